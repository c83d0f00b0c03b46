// EABridgeExportBars.mq5 on the simulated terminal: reads BAR lines (time open high low close, server time) from a
// file, runs the script's OnStart and writes what it wrote under MQL5\Files into OUT_DIR.
//   test_export_bars BARS_FILE OUT_DIR UTC_OFFSET_SECONDS FROM TO
#define EABRIDGE_POSIX_ABI
#include "mql5compat.h"
#include "Scripts/EABridgeExportBars.mq5"

int main(int argc, char **argv) {
  if (argc < 6) return 2;
  std::ifstream in(argv[1]);
  std::string cmd;
  while (in >> cmd) {
    mqlcompat::SimBar b{};
    in >> b.time >> b.open >> b.high >> b.low >> b.close >> b.tick_volume >> b.spread;
    g_sim.bars.push_back(b);
  }
  g_sim.bar_index = (long)g_sim.bars.size() - 1;
  SimSetTime(g_sim.bars.back().time + 3600);
  g_sim.utc_offset = std::atol(argv[3]);
  InpFrom = std::atol(argv[4]);
  InpTo = std::atol(argv[5]);
  OnStart();
  for (auto &l : g_sim.log) std::fprintf(stderr, "%s\n", l.c_str());
  for (auto &f : g_sim.files) {
    std::ofstream out(std::string(argv[2]) + "/" + f.first, std::ios::binary);
    out << f.second;
    std::printf("%s\n", f.first.c_str());
  }
  return g_sim.files.empty() ? 1 : 0;
}
