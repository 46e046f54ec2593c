# Project-wide defaults for our own targets: strict warnings, sanitizers when
# asked for. Applied per target so that system headers and generated BPF
# skeletons keep their own warning levels.
set(ATOLL_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

set(ATOLL_SANITIZER_FLAGS "")
if(ATOLL_SANITIZE)
  set(ATOLL_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(ATOLL_TSAN)
  set(ATOLL_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()

function(atoll_target_defaults target)
  target_compile_options(${target} PRIVATE ${ATOLL_WARNINGS} ${ATOLL_SANITIZER_FLAGS})
  target_link_options(${target} PRIVATE ${ATOLL_SANITIZER_FLAGS})
  target_compile_definitions(${target} PRIVATE ATOLL_VERSION="${PROJECT_VERSION}")
endfunction()

# atoll_library(NAME SOURCES ... [DEPS ...]) - one static library per folder;
# headers are included as "folder/Header.h" from the repository root.
function(atoll_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  atoll_target_defaults(${name})
  if(ATOLL_SANITIZE OR ATOLL_TSAN)
    target_link_options(${name} INTERFACE ${ATOLL_SANITIZER_FLAGS})
  endif()
endfunction()
