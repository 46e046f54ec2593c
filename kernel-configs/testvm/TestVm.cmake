# The test VM: real cgroup v2 and two NUMA nodes for the `vm` tests, which
# the host cannot offer. Included by tests/CMakeLists.txt after every test
# folder, so the GLOBAL property ATOLL_VM_TEST_BINARIES (filled by
# atoll_test(... LABEL vm ...)) is complete.
#
#   vm.boot            fetches Debian's stock kernel (cached), builds the
#                      initramfs, boots QEMU once and runs every in-VM gtest
#                      binary (run-vm.sh); fails when the guest does not
#                      report that it finished. Fixture setup for:
#   vm.<Suite>.<Test>  one per in-VM gtest case, registered at ctest time
#                      (VmCaseDiscovery.cmake); passes, fails or skips as the
#                      case did in the guest.
#
# Besides the gtest binaries the guest gets the targets in the GLOBAL property
# ATOLL_VM_EXTRA_BINARIES and always the `atoll` CLI, in /share/bin; the guest
# init exports ATOLL_CLI=/share/bin/atoll and ATOLL_VM_BIN=/share/bin.

set(ATOLL_VM_BOOT_TIMEOUT 120 CACHE STRING "Seconds the test VM may run before it is killed")
set(ATOLL_VM_BINARY_TIMEOUT 60 CACHE STRING "Seconds one gtest binary may run inside the test VM")
set(ATOLL_VM_KERNEL_CACHE "${CMAKE_BINARY_DIR}/testvm/kernel" CACHE PATH
  "Folder the guest kernel package is downloaded and unpacked into")

set(_atoll_vm_dir "${CMAKE_BINARY_DIR}/testvm")
set(_atoll_vm_scripts "${CMAKE_CURRENT_LIST_DIR}")
set(_atoll_vm_fixture atoll_test_vm)

# Host side judge of one in-VM case.
add_executable(atoll_vm_case_result
  ${_atoll_vm_scripts}/VmCaseResult.cpp
  ${_atoll_vm_scripts}/GtestReport.cpp)
target_include_directories(atoll_vm_case_result PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(atoll_vm_case_result PRIVATE atoll_util CLI11::CLI11
  nlohmann_json::nlohmann_json)
atoll_target_defaults(atoll_vm_case_result)
add_dependencies(atoll_tests atoll_vm_case_result)

get_property(_atoll_vm_tests GLOBAL PROPERTY ATOLL_VM_TEST_BINARIES)
get_property(_atoll_vm_extras GLOBAL PROPERTY ATOLL_VM_EXTRA_BINARIES)
if(TARGET atoll)
  list(APPEND _atoll_vm_extras atoll)
endif()
list(REMOVE_DUPLICATES _atoll_vm_extras)

# The manifest run-vm.sh reads: "test|extra<TAB>NAME<TAB>PATH[<TAB>LIMIT]",
# LIMIT being a test binary's own limit (atoll_test(... TIMEOUT s)). The
# boot limit grows by each such limit, so that a long binary brings its own
# allowance instead of eating the others'.
set(_atoll_vm_manifest "")
set(_atoll_vm_boot_timeout ${ATOLL_VM_BOOT_TIMEOUT})
foreach(_target IN LISTS _atoll_vm_tests)
  get_property(_limit GLOBAL PROPERTY ATOLL_VM_BINARY_TIMEOUT_${_target})
  if(_limit)
    string(APPEND _atoll_vm_manifest
      "test\t${_target}\t$<TARGET_FILE:${_target}>\t${_limit}\n")
    math(EXPR _atoll_vm_boot_timeout "${_atoll_vm_boot_timeout} + ${_limit}")
  else()
    string(APPEND _atoll_vm_manifest "test\t${_target}\t$<TARGET_FILE:${_target}>\n")
  endif()
endforeach()
foreach(_target IN LISTS _atoll_vm_extras)
  string(APPEND _atoll_vm_manifest "extra\t${_target}\t$<TARGET_FILE:${_target}>\n")
  add_dependencies(atoll_tests ${_target})
endforeach()
file(GENERATE OUTPUT "${_atoll_vm_dir}/manifest.tsv" CONTENT "${_atoll_vm_manifest}")

# Fetching the kernel the first time is bounded separately (run-vm.sh), so
# the ctest limit is the boot limit plus that allowance.
math(EXPR _atoll_vm_ctest_timeout "${_atoll_vm_boot_timeout} + 330")
add_test(NAME vm.boot
  COMMAND bash ${_atoll_vm_scripts}/run-vm.sh
    --work ${_atoll_vm_dir}
    --manifest ${_atoll_vm_dir}/manifest.tsv
    --kernel-cache ${ATOLL_VM_KERNEL_CACHE}
    --timeout ${_atoll_vm_boot_timeout}
    --binary-timeout ${ATOLL_VM_BINARY_TIMEOUT})
# RUN_SERIAL: TCG is slow enough without other tests competing for the CPUs.
set_tests_properties(vm.boot PROPERTIES
  LABELS vm
  FIXTURES_SETUP ${_atoll_vm_fixture}
  TIMEOUT ${_atoll_vm_ctest_timeout}
  RUN_SERIAL TRUE)

# One ctest test per in-VM case, discovered when ctest starts.
set(_atoll_vm_include "")
string(APPEND _atoll_vm_include
  "set(ATOLL_VM_CASE_TOOL [==[$<TARGET_FILE:atoll_vm_case_result>]==])\n"
  "set(ATOLL_VM_RESULTS [==[${_atoll_vm_dir}/share/results]==])\n"
  "set(ATOLL_VM_GUEST_LOG [==[${_atoll_vm_dir}/guest.log]==])\n"
  "set(ATOLL_VM_FIXTURE ${_atoll_vm_fixture})\n"
  "include([==[${_atoll_vm_scripts}/VmCaseDiscovery.cmake]==])\n")
foreach(_target IN LISTS _atoll_vm_tests)
  string(APPEND _atoll_vm_include
    "atoll_vm_add_cases(${_target} [==[$<TARGET_FILE:${_target}>]==])\n")
endforeach()
file(GENERATE OUTPUT "${_atoll_vm_dir}/cases.cmake" CONTENT "${_atoll_vm_include}")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_atoll_vm_dir}/cases.cmake")
