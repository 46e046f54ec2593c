#pragma once
// Certificates for TLS tests and benchmarks, made in process with OpenSSL's
// library so that no openssl CLI or openssl.cnf is needed (the test VM has
// neither).
#include <string>

namespace Atoll::transfer::testing {

// Writes into `dir` a CA (ca.crt, ca.key) with certificates for "server"
// and "client" signed by it, and a second CA (rogue.crt, rogue.key) with an
// "intruder" certificate signed by that one; all P-256, valid two days, keys
// in unencrypted PKCS#8 PEM. False when any step fails; OpenSSL's errors are
// then printed to stderr.
bool makeTestCertificates(const std::string& dir);

}  // namespace Atoll::transfer::testing
