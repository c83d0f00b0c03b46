// harness.h: what every test program shares. It includes the compatibility header and the rewritten EA (inputs
// become globals the tests may set), and gives a CHECK that counts and reports failures without stopping.
#pragma once
#define EABRIDGE_POSIX_ABI  // zmq_pollitem_t as libzmq lays it out on Linux (see Zmq.mqh)
#include "mql5compat.h"
#include "Experts/EABridge.mq5"

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
