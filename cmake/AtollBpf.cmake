# BPF build: bpf/<name>.bpf.c -> <name>.bpf.o -> <name>.skel.h, exposed as the
# INTERFACE target atoll_bpf_skel_<name>. vmlinux.h is generated once per build
# tree from the running kernel's BTF, so CO-RE relocations match real kernels.
find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
set(ATOLL_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH "BTF used to generate vmlinux.h")
set(ATOLL_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)

execute_process(COMMAND uname -m OUTPUT_VARIABLE _atoll_arch OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_atoll_arch STREQUAL "x86_64")
  set(ATOLL_BPF_ARCH x86)
elseif(_atoll_arch STREQUAL "aarch64")
  set(ATOLL_BPF_ARCH arm64)
else()
  set(ATOLL_BPF_ARCH ${_atoll_arch})
endif()

add_custom_command(
  OUTPUT ${ATOLL_BPF_GEN_DIR}/vmlinux.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${ATOLL_BPF_GEN_DIR}
  COMMAND ${BPFTOOL} btf dump file ${ATOLL_VMLINUX_BTF} format c > ${ATOLL_BPF_GEN_DIR}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${ATOLL_BPF_GEN_DIR}/vmlinux.h.tmp ${ATOLL_BPF_GEN_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${ATOLL_VMLINUX_BTF}"
  VERBATIM)
add_custom_target(atoll_vmlinux_h DEPENDS ${ATOLL_BPF_GEN_DIR}/vmlinux.h)

# atoll_bpf_object(NAME [HEADERS shared.h ...])
#   Source: ${CMAKE_CURRENT_SOURCE_DIR}/NAME.bpf.c
#   Shared kernel/user contract headers live next to it and are included by
#   both sides; user code links atoll_bpf_skel_NAME and includes "NAME.skel.h".
function(atoll_bpf_object name)
  cmake_parse_arguments(ARG "" "" "HEADERS" ${ARGN})
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${name}.bpf.c)
  set(obj ${ATOLL_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${ATOLL_BPF_GEN_DIR}/${name}.skel.h)
  set(deps ${src} ${ATOLL_BPF_GEN_DIR}/vmlinux.h)
  foreach(h ${ARG_HEADERS})
    list(APPEND deps ${CMAKE_CURRENT_SOURCE_DIR}/${h})
  endforeach()
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${ATOLL_BPF_ARCH}
            -Wall -Werror
            -I${ATOLL_BPF_GEN_DIR} -I${CMAKE_CURRENT_SOURCE_DIR} -I${PROJECT_SOURCE_DIR}
            -c ${src} -o ${obj}
    DEPENDS ${deps}
    COMMENT "Compiling BPF object ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(atoll_bpf_gen_${name} DEPENDS ${skel})
  add_library(atoll_bpf_skel_${name} INTERFACE)
  add_dependencies(atoll_bpf_skel_${name} atoll_bpf_gen_${name})
  target_include_directories(atoll_bpf_skel_${name} INTERFACE ${ATOLL_BPF_GEN_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(atoll_bpf_skel_${name} INTERFACE PkgConfig::LIBBPF)
endfunction()
