#pragma once
// Two network namespaces joined by a veth pair, created by a test and removed
// when it ends. Addresses come from 10.231.0.0/30 and exist only inside these
// namespaces, so no traffic can leave them.
#include <functional>
#include <string>

namespace Atoll::transfer::testing {

class NetnsPair {
 public:
  NetnsPair();  // check ok() before use
  ~NetnsPair();
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& nameA() const { return a_; }
  const std::string& nameB() const { return b_; }
  static constexpr const char* kAddressA = "10.231.0.1";
  static constexpr const char* kAddressB = "10.231.0.2";
  // Runs fn on a thread that joined namespace A (or B) and waits for it.
  void inA(const std::function<void()>& fn) const { runIn(a_, fn); }
  void inB(const std::function<void()>& fn) const { runIn(b_, fn); }
  // Joins the calling thread (or forked child) to a namespace for good.
  static bool enter(const std::string& name);
  // Brings A's end of the link down (simulated cable cut).
  bool cutLink() const;

 private:
  static void runIn(const std::string& name, const std::function<void()>& fn);
  bool ok_ = false;
  std::string error_;
  std::string a_, b_;
  std::string vethA_;
};

// Runs a shell command, returns its exit status.
int shell(const std::string& command);

}  // namespace Atoll::transfer::testing
