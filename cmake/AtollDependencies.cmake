# Every dependency comes from a Debian package (scripts/install-deps.sh).
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
pkg_check_modules(LIBURING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
pkg_check_modules(LIBVIRT REQUIRED IMPORTED_TARGET libvirt)
pkg_check_modules(LIBNUMA REQUIRED IMPORTED_TARGET numa)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
# cpp-httplib ships without a CMake package; its pkg-config flags must match
# how Debian built libcpp-httplib (the daemon's API and the CLI share them).
pkg_check_modules(CPPHTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
find_package(OpenSSL REQUIRED)
# Vector AES-GCM for TLS records (migrate/transfer/VaesGcm.*). Debian builds
# intel-ipsec-mb for amd64 only; without it records stay with OpenSSL.
find_path(IPSEC_MB_INCLUDE_DIR intel-ipsec-mb.h)
find_library(IPSEC_MB_LIBRARY IPSec_MB)
if(IPSEC_MB_INCLUDE_DIR AND IPSEC_MB_LIBRARY)
  add_library(Atoll::IpsecMb UNKNOWN IMPORTED)
  set_target_properties(Atoll::IpsecMb PROPERTIES
    IMPORTED_LOCATION "${IPSEC_MB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${IPSEC_MB_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS ATOLL_HAVE_IPSEC_MB)
  message(STATUS "intel-ipsec-mb: ${IPSEC_MB_LIBRARY} (vector AES-GCM for TLS records)")
else()
  message(STATUS "intel-ipsec-mb: not found; TLS records use OpenSSL's AES-GCM only")
endif()
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(prometheus-cpp REQUIRED)
if(ATOLL_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(ATOLL_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
