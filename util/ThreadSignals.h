#pragma once
// Signal masks of the calling thread.
#include <pthread.h>
#include <signal.h>

namespace Atoll {

// For a thread that writes to sockets it does not own the other end of (a
// library's client, such as libvirt's): a peer that went away gives EPIPE
// there instead of SIGPIPE ending the process, whatever the process does
// with SIGPIPE elsewhere. Blocked, a SIGPIPE stays pending on this thread
// alone and is never delivered.
inline void blockSigpipeInThisThread() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

}  // namespace Atoll
