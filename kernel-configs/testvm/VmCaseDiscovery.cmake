# Read by ctest (TEST_INCLUDE_FILES), not by cmake: registers one ctest test
# per case of an in-VM gtest binary, found by running the binary with
# --gtest_list_tests on the host just before the tests run (as GoogleTest's
# DISCOVERY_MODE PRE_TEST does). Each test judges its case from what the
# guest wrote, so it needs the vm.boot fixture.
#
# Expects, set by the generated include file:
#   ATOLL_VM_CASE_TOOL  path of atoll_vm_case_result
#   ATOLL_VM_RESULTS    results folder on the share
#   ATOLL_VM_GUEST_LOG  guest console log
#   ATOLL_VM_FIXTURE    fixture name set up by vm.boot

# Matches kExitSkipped in VmCaseResult.cpp.
set(ATOLL_VM_SKIP_RETURN_CODE 77)
set(ATOLL_VM_CASE_TIMEOUT 30)

# Registers a test that fails with `message` (a binary that cannot be listed
# must not disappear from the results).
function(atoll_vm_add_broken name message)
  add_test(${name} sh -c "echo \"$1\"; exit 1" sh "${message}")
  set_tests_properties(${name} PROPERTIES LABELS vm FIXTURES_REQUIRED ${ATOLL_VM_FIXTURE})
endfunction()

# atoll_vm_add_cases(NAME PATH): the cases of the gtest binary NAME at PATH.
function(atoll_vm_add_cases name path)
  if(NOT EXISTS "${path}")
    atoll_vm_add_broken(vm.${name}.NOT_BUILT "${path} is not built")
    return()
  endif()
  execute_process(COMMAND "${path}" --gtest_list_tests
    OUTPUT_VARIABLE listing ERROR_VARIABLE errors RESULT_VARIABLE status TIMEOUT 30)
  if(NOT status EQUAL 0)
    atoll_vm_add_broken(vm.${name}.LIST_FAILED
      "${path} --gtest_list_tests failed (${status}): ${listing}${errors}")
    return()
  endif()

  # Suites start in column 0 and end with "."; cases are indented. Typed and
  # parameterised ones carry a "  # TypeParam = ..." comment.
  string(REPLACE ";" "\\;" listing "${listing}")
  string(REPLACE "\n" ";" lines "${listing}")
  set(suite "")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE " *#.*$" "" line "${line}")
    if(line STREQUAL "")
      continue()
    endif()
    if(line MATCHES "^[^ ]")
      string(REGEX REPLACE "\\.$" "" suite "${line}")
      continue()
    endif()
    string(STRIP "${line}" case)
    set(full "${suite}.${case}")
    set(test vm.${full})
    add_test(${test} "${ATOLL_VM_CASE_TOOL}"
      --results "${ATOLL_VM_RESULTS}" --binary "${name}" --case "${full}"
      --guest-log "${ATOLL_VM_GUEST_LOG}")
    set_tests_properties(${test} PROPERTIES
      LABELS vm
      FIXTURES_REQUIRED ${ATOLL_VM_FIXTURE}
      SKIP_RETURN_CODE ${ATOLL_VM_SKIP_RETURN_CODE}
      TIMEOUT ${ATOLL_VM_CASE_TIMEOUT})
    if(full MATCHES "(^|\\.|/)DISABLED_")
      set_tests_properties(${test} PROPERTIES DISABLED TRUE)
    endif()
  endforeach()
endfunction()
