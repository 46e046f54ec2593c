#pragma once
// Certificates for TLS tests and benchmarks, made with the openssl CLI.
#include <string>

namespace Atoll::transfer::testing {

// Writes into `dir` a CA (ca.crt, ca.key) with certificates for "server"
// and "client" signed by it, and a second CA (rogue.crt) with an
// "intruder" certificate signed by that one; all P-256, valid two days.
// False when the openssl command fails.
bool makeTestCertificates(const std::string& dir);

}  // namespace Atoll::transfer::testing
