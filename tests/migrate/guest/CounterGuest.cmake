# The migration test guest's workload and the paths a test or benchmark needs
# to boot it: atoll_counter_guest_definitions(TARGET) gives TARGET the fetch
# script, the kernel cache, the workload binary and the initramfs builder.
if(NOT TARGET atoll_counter_guest)
  add_executable(atoll_counter_guest ${CMAKE_CURRENT_LIST_DIR}/CounterGuest.c)
  target_compile_options(atoll_counter_guest PRIVATE -O2 -Wall -Wextra -Werror)
  target_link_options(atoll_counter_guest PRIVATE -static)
endif()
# The test VM's kernel cache (TestVm.cmake defines the cache variable later,
# with the same default).
if(DEFINED ATOLL_VM_KERNEL_CACHE)
  set(ATOLL_COUNTER_KERNEL_CACHE "${ATOLL_VM_KERNEL_CACHE}")
else()
  set(ATOLL_COUNTER_KERNEL_CACHE "${CMAKE_BINARY_DIR}/testvm/kernel")
endif()
set(ATOLL_COUNTER_GUEST_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(atoll_counter_guest_definitions target)
  add_dependencies(${target} atoll_counter_guest)
  target_compile_definitions(${target} PRIVATE
    ATOLL_FETCH_KERNEL_SCRIPT="${PROJECT_SOURCE_DIR}/kernel-configs/testvm/fetch-kernel.sh"
    ATOLL_VM_KERNEL_CACHE_DIR="${ATOLL_COUNTER_KERNEL_CACHE}"
    ATOLL_COUNTER_GUEST_BINARY="$<TARGET_FILE:atoll_counter_guest>"
    ATOLL_COUNTER_INITRAMFS_SCRIPT="${ATOLL_COUNTER_GUEST_DIR}/build-counter-initramfs.sh"
    ATOLL_COUNTER_INIT_SCRIPT="${ATOLL_COUNTER_GUEST_DIR}/counter-init.sh")
endfunction()
