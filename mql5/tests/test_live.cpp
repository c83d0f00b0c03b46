// The compiled EA against the real Python server through real libzmq.
//
//   test_live run ENDPOINT SCRIPT TESTER TIMEOUT_MS RETRIES UTC_OFFSET_H [SPREAD [FORWARD_CALENDAR]]
//     SCRIPT is a text file of commands, one per line:
//       BAR time open high low close   the chart's next bar opens (server time); OnTimer runs once, then the trade
//                                      server applies stops inside the bar (bid/ask = prices -/+ SPREAD/2)
//       TICK n sleep_ms                 OnTimer runs n more times, sleeping between (live replies arrive on timers)
//       CAL time|country|currency|event|importance|unit|multiplier|digits|actual|forecast|previous|revised
//                                       a calendar value is released (server time; empty number = none)
//       CALREV k|actual|forecast|previous  the k-th value released so far (0 = first) changes: published or revised
//                                       (CalendarValueLast returns it again, with its revision counted up)
//       REINIT reason [symbol]          OnDeinit(reason) then OnInit(), globals kept, as the terminal does when inputs,
//                                       the chart's symbol (given: the chart switches to it) or timeframe change
//       PAUSE label                     prints "PAUSED label" and waits for a line on stdin (the test starts or
//                                       kills the server meanwhile)
//     After every BAR and TICK it prints:
//       STATE time held volume targets rejected reachable longest_call_us target forwarded
//   test_live bench ENDPOINT N [WARMUP]
//     N signal requests through the EA's client (Request(): send, poll, receive); prints round-trip percentiles.
#include "harness.h"

static long g_longest_us = 0;

static void timer() {
  ulong t0 = GetMicrosecondCount();
  OnTimer();
  long took = (long)(GetMicrosecondCount() - t0);
  if (took > g_longest_us) g_longest_us = took;
}

static void state() {
  int d = 0;
  double v = 0;
  CBridgeTrader probe;
  TraderSettings s;
  s.symbol = _Symbol;
  s.magic = InpMagic;
  probe.Init(s);
  probe.Position(d, v);
  std::printf("STATE %ld %d %.2f %ld %ld %d %ld %d %ld\n", (long)g_sim.time, d, v, ExtBridge.Targets(), ExtBridge.Rejected(),
              ExtBridge.Reachable() ? 1 : 0, g_longest_us, ExtBridge.LastTarget(), ExtBridge.Forwarded());
  std::fflush(stdout);
  g_longest_us = 0;
}

static int run(int argc, char **argv) {
  if (argc < 8) return 2;
  InpEndpoint = argv[2];
  g_sim.tester = std::atoi(argv[4]) != 0;
  InpTimeoutMs = std::atoi(argv[5]);
  InpRetries = std::atoi(argv[6]);
  InpTesterUtcOffsetHours = std::atoi(argv[7]);
  g_sim.utc_offset = (long)InpTesterUtcOffsetHours * 3600;
  double half = (argc > 8 ? std::atof(argv[8]) : 0.0001) / 2.0;
  InpForwardCalendar = argc > 9 && std::atoi(argv[9]) != 0;
  InpSignalSeconds = 0;  // ask on new bars only, so the answers depend on simulated time alone
  InpMaxSpreadPoints = 0;
  InpSendBars = 3;
  std::ifstream script(argv[3]);
  if (!script) { std::fprintf(stderr, "cannot read %s\n", argv[3]); return 2; }
  if (OnInit() != INIT_SUCCEEDED) { std::fprintf(stderr, "OnInit failed\n"); return 3; }
  std::string cmd;
  while (script >> cmd) {
    if (cmd == "BAR") {
      mqlcompat::SimBar b{};
      script >> b.time >> b.open >> b.high >> b.low >> b.close;
      g_sim.bars.push_back(b);
      g_sim.bar_index = (long)g_sim.bars.size() - 1;
      SimSetTime(b.time);
      g_sim.bid = b.open - half;
      g_sim.ask = b.open + half;
      timer();
      SimApplyStops(b, half);
      state();  // the position held at the bar's close, as the backtester's position series
    } else if (cmd == "TICK") {
      int n = 0, ms = 0;
      script >> n >> ms;
      for (int i = 0; i < n; i++) { Sleep(ms); timer(); }
      state();
    } else if (cmd == "CAL") {
      std::string line;
      std::getline(script, line);  // the rest of the line: event names have spaces
      line.erase(0, line.find_first_not_of(' '));
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string part;
      while (std::getline(ss, part, '|')) f.push_back(part);
      while (f.size() < 12) f.push_back("");
      auto scaled = [](const std::string &t) { return t.empty() ? LONG_MIN : std::llround(std::stod(t) * 1e6); };
      ulong id = g_calendar().values.size() + 1;
      MqlCalendarCountry c{};
      c.id = id; c.code = f[1]; c.currency = f[2];
      MqlCalendarEvent e{};
      e.id = 1000 + id; e.country_id = id; e.name = f[3]; e.importance = std::stoi(f[4]);
      MqlCalendarValue v{};
      v.id = 5000 + id; v.event_id = e.id; v.time = std::stol(f[0]);
      v.actual_value = scaled(f[8]); v.forecast_value = scaled(f[9]); v.prev_value = scaled(f[10]); v.revised_prev_value = scaled(f[11]);
      g_calendar().countries.push_back(c);
      g_calendar().events.push_back(e);
      SimCalendarAdd(v);
    } else if (cmd == "CALREV") {
      std::string line;
      std::getline(script, line);
      line.erase(0, line.find_first_not_of(' '));
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string part;
      while (std::getline(ss, part, '|')) f.push_back(part);
      while (f.size() < 4) f.push_back("");
      auto scaled = [](const std::string &x) { return x.empty() ? LONG_MIN : std::llround(std::stod(x) * 1e6); };
      size_t k = (size_t)std::stoul(f[0]);
      MqlCalendarValue v = g_calendar().values[k];
      v.actual_value = scaled(f[1]); v.forecast_value = scaled(f[2]); v.prev_value = scaled(f[3]);
      SimCalendarChange(k, v);
    } else if (cmd == "REINIT") {
      int reason = 0;
      script >> reason;
      std::string rest;
      std::getline(script, rest);
      rest.erase(0, rest.find_first_not_of(' '));
      OnDeinit(reason);
      if (!rest.empty()) g_sim.symbol = rest;
      if (OnInit() != INIT_SUCCEEDED) { std::fprintf(stderr, "OnInit failed after re-init\n"); return 3; }
      state();
    } else if (cmd == "PAUSE") {
      std::string label;
      script >> label;
      std::printf("PAUSED %s\n", label.c_str());
      std::fflush(stdout);
      std::string line;
      std::getline(std::cin, line);
    } else {
      std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
      return 2;
    }
  }
  OnDeinit(REASON_REMOVE);
  for (auto &l : g_sim.log) std::fprintf(stderr, "%s\n", l.c_str());
  return 0;
}

// Each sample is what the EA does per bar: encode the signal request, send, poll, receive, decode the target.
static int bench(int argc, char **argv) {
  if (argc < 4) return 2;
  int n = std::atoi(argv[3]);
  int warmup = argc > 4 ? std::atoi(argv[4]) : 100;
  CBridgeClient client;
  client.Init(string(argv[2]), 2500, 3, "", "", "");
  std::vector<double> rtt;
  MqlArray<MqlRates> bars;
  for (int i = 0; i < n + warmup; i++) {
    ulong t0 = GetMicrosecondCount();
    string req, reply;
    BridgeSignalRequest(string("b-" + std::to_string(i)), "EURUSD", 1456790400 + 3600 * (i % 240), 14400, 0, 0.0, bars, 0, 5,
                        true, req);
    if (client.Request(req, reply) != BRIDGE_REPLY) { std::fprintf(stderr, "request %d failed: %s\n", i, client.LastError().c_str()); return 1; }
    BridgeReply r;
    string err;
    if (!BridgeDecodeReply(reply, r, err) || r.type != string("target")) { std::fprintf(stderr, "bad reply %s\n", reply.c_str()); return 1; }
    double us = (double)(GetMicrosecondCount() - t0);
    if (i >= warmup) rtt.push_back(us);  // the first requests warm up the connection and the server's caches
  }
  std::sort(rtt.begin(), rtt.end());
  auto pct = [&](double p) { return rtt[(size_t)std::min<double>(rtt.size() - 1, p / 100.0 * rtt.size())]; };
  std::printf("{\"n\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f}\n", rtt.size(), pct(50), pct(99),
              std::accumulate(rtt.begin(), rtt.end(), 0.0) / rtt.size());
  client.Shutdown();
  return 0;
}

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "run") return run(argc, argv);
  if (mode == "bench") return bench(argc, argv);
  std::fprintf(stderr, "usage: test_live run ENDPOINT SCRIPT TESTER TIMEOUT_MS RETRIES UTC_OFFSET_H | bench ENDPOINT N\n");
  return 2;
}
