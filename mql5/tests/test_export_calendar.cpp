// EABridgeExportCalendar.mq5 on a simulated calendar: reads one value per line,
//   time|country|currency|event|importance(0-3)|unit|multiplier|digits|actual|forecast|previous|revised
// (server time; an empty number is "no value"), runs OnStart and writes the export into OUT_DIR.
//   test_export_calendar VALUES_FILE OUT_DIR UTC_OFFSET_SECONDS SERVER_TZ CURRENCIES TESTER
#define EABRIDGE_POSIX_ABI
#include "mql5compat.h"
#include "Scripts/EABridgeExportCalendar.mq5"

static long scaled(const std::string &text) {
  return text.empty() ? LONG_MIN : std::llround(std::stod(text) * 1e6);
}

int main(int argc, char **argv) {
  if (argc < 7) return 2;
  std::ifstream in(argv[1]);
  std::string line;
  ulong id = 1;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, '|')) f.push_back(part);
    while (f.size() < 12) f.push_back("");
    MqlCalendarCountry c{};
    c.id = id; c.code = f[1]; c.currency = f[2];
    MqlCalendarEvent e{};
    e.id = 1000 + id; e.country_id = id; e.name = f[3]; e.importance = std::stoi(f[4]);
    e.unit = (ENUM_CALENDAR_EVENT_UNIT)std::stoi(f[5]); e.multiplier = (ENUM_CALENDAR_EVENT_MULTIPLIER)std::stoi(f[6]);
    e.digits = (uint)std::stoi(f[7]);
    MqlCalendarValue v{};
    v.id = 5000 + id; v.event_id = e.id; v.time = std::stol(f[0]);
    v.actual_value = scaled(f[8]); v.forecast_value = scaled(f[9]); v.prev_value = scaled(f[10]); v.revised_prev_value = scaled(f[11]);
    g_calendar().countries.push_back(c);
    g_calendar().events.push_back(e);
    g_calendar().values.push_back(v);
    id++;
  }
  SimSetTime(1704499200);  // 2024-01-06 00:00 server time, after every value in the tests
  g_sim.utc_offset = std::atol(argv[3]);
  g_sim.tester = std::atoi(argv[6]) != 0;
  InpServerTz = argv[4];
  InpCurrencies = argv[5];
  InpFrom = 0;
  OnStart();
  for (auto &l : g_sim.log) std::fprintf(stderr, "%s\n", l.c_str());
  for (auto &f : g_sim.files) {
    std::ofstream out(std::string(argv[2]) + "/" + f.first, std::ios::binary);
    out << f.second;
    std::printf("%s\n", f.first.c_str());
  }
  return 0;
}
