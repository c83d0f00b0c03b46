// harness.h: what every test program shares. It includes the compatibility header and the rewritten EA (inputs
// become globals the tests may set), and gives a CHECK that counts and reports failures without stopping.
//
// Warnings: the build runs with -Wconversion -Wsign-conversion (harness_build.CXXFLAGS), the narrowing MetaEditor
// warns about ("possible loss of data due to type conversion"). They apply to the MQL5 sources only: the compatibility
// header and the test programs' own code are C++ written for the harness, not for MetaEditor, and are exempt.
#pragma once
#define EABRIDGE_POSIX_ABI  // zmq_pollitem_t as libzmq lays it out on Linux (see Zmq.mqh)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "mql5compat.h"
#pragma GCC diagnostic pop
#include "Experts/EABridge.mq5"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"

#include <cstddef>
// The layout libzmq on Linux x86-64 reads (void *socket; int fd; short events; short revents): the one this harness
// links against. The Windows x64 layout, what the terminal passes to libzmq.dll, is asserted in abi_windows.cpp.
static_assert(sizeof(ZmqPollItem) == 16 && offsetof(ZmqPollItem, fd) == 8 && offsetof(ZmqPollItem, events) == 12 &&
                  offsetof(ZmqPollItem, revents) == 14,
              "ZmqPollItem must match zmq_pollitem_t on Linux x86-64");

static int g_checks = 0, g_failures = 0;
#define CHECK(cond, what)                                                                    \
  do {                                                                                       \
    g_checks++;                                                                              \
    if (!(cond)) {                                                                           \
      g_failures++;                                                                          \
      std::fprintf(stderr, "FAIL %s:%d: %s  [%s]\n", __FILE__, __LINE__, std::string(what).c_str(), #cond); \
    }                                                                                        \
  } while (0)

inline int harness_summary(const char *name) {
  std::printf("%s: %d checks, %d failures\n", name, g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

inline std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A fresh simulated EURUSD on a netting account with 10,000 USD, bid 1.10000 / ask 1.10010 (1 pip spread).
inline void reset_sim() {
  g_sim = mqlcompat::Sim();
}
