#include "TestCertificates.h"

#include <cstdlib>

namespace Atoll::transfer::testing {

bool makeTestCertificates(const std::string& dir) {
  std::string script =
      "cd '" + dir +
      "' && for ca in ca rogue; do openssl req -x509 -newkey ec -pkeyopt "
      "ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.crt -subj /CN=$ca -days 2 "
      "2>/dev/null || exit 1; done"
      " && for who in server:ca client:ca intruder:rogue; do n=${who%%:*}; c=${who##*:};"
      " openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out "
      "$n.csr -subj /CN=$n 2>/dev/null || exit 1;"
      " openssl x509 -req -in $n.csr -CA $c.crt -CAkey $c.key -CAcreateserial -out $n.crt "
      "-days 2 2>/dev/null || exit 1; done";
  return std::system(script.c_str()) == 0;
}

}  // namespace Atoll::transfer::testing
