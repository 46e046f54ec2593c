// The workload of the migration test guest: keeps a memory buffer filled
// with an incrementing counter pattern and checks, before each overwrite,
// that every page still holds the previous pass's value. A live migration
// that lost or corrupted a page shows up as "PATTERN BROKEN". Progress goes
// to the serial console so the host can see the guest keep running on the
// destination QEMU.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

enum {
  kPageBytes = 4096,
  kPages = 4096,           // 16 MiB, all dirtied every pass
  kPassIntervalMs = 50,    // bounds the dirty rate so pre-copy converges
  kReportIntervalMs = 250  // one progress line per quarter second
};

static uint64_t nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

// The two words of page `page` for pass `pass`: the counter and a value that
// ties it to the page, so a page swapped with another is noticed too.
static uint64_t tagOf(uint64_t pass, uint64_t page) {
  return (pass * 0x9E3779B97F4A7C15ull) ^ (page << 1) ^ 0x5A5A5A5A5A5A5A5Aull;
}

int main(void) {
  uint64_t* buffer = mmap(NULL, (size_t)kPages * kPageBytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (buffer == MAP_FAILED) {
    printf("counter-guest: mmap failed\n");
    return 1;
  }
  const uint64_t wordsPerPage = kPageBytes / sizeof(uint64_t);
  uint64_t pass = 0;
  uint64_t broken = 0;
  uint64_t lastReport = 0;
  for (;;) {
    for (uint64_t page = 0; page < kPages; ++page) {
      uint64_t* words = buffer + page * wordsPerPage;
      if (pass > 0 && (words[0] != pass || words[1] != tagOf(pass, page))) {
        if (broken++ < 5) {
          printf("counter-guest: PATTERN BROKEN pass %llu page %llu holds %llu\n",
                 (unsigned long long)pass, (unsigned long long)page, (unsigned long long)words[0]);
        }
      }
      words[0] = pass + 1;
      words[1] = tagOf(pass + 1, page);
    }
    ++pass;
    uint64_t now = nowMs();
    if (now - lastReport >= kReportIntervalMs) {
      lastReport = now;
      printf("counter-guest: pass %llu broken %llu\n", (unsigned long long)pass,
             (unsigned long long)broken);
      fflush(stdout);
    }
    struct timespec pauseFor = {0, kPassIntervalMs * 1000000L};
    nanosleep(&pauseFor, NULL);
  }
}
