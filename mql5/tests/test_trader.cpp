// The trader (Trader.mqh) and the EA's input checks against the simulated account in mql5compat.h: lot sizing,
// reconciliation (open, repeated target, reversal, close), risk gates and the trade server's return codes.
#include "harness.h"

static TraderSettings settings() {
  TraderSettings s;
  s.symbol = "EURUSD";
  s.magic = 777;
  s.risk_percent = 1.0;
  s.max_lots = 0.0;
  s.max_spread_points = 30;
  s.hour_from = 0;
  s.hour_to = 24;
  s.deviation_points = 10;
  s.fallback_sl = 0.0;
  s.max_attempts = 3;
  return s;
}

static int held(CBridgeTrader &t, double *volume = nullptr) {
  int d = 0;
  double v = 0;
  t.Position(d, v);
  if (volume) *volume = v;
  return d;
}

static void lot_sizing() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  // 1% of 10,000 = 100 USD; a 0.0030 stop is 300 ticks of 1 USD per lot = 300 USD per lot -> 0.333 -> 0.33
  CHECK(std::fabs(t.LotSize(0.0030) - 0.33) < 1e-9, "risk 1%, stop 30 pips: 0.33 lots, got " + std::to_string(t.LotSize(0.0030)));
  g_sim.vol_step = 0.1;
  CHECK(std::fabs(t.LotSize(0.0030) - 0.3) < 1e-9, "rounded down to the 0.1 step");
  CHECK(std::fabs(t.LotSize(0.0010) - 1.0) < 1e-9, "1.0 exactly stays 1.0 with step 0.1 (no lost step)");
  g_sim.vol_min = 0.5;
  CHECK(t.LotSize(0.0030) == 0.0, "below the minimum volume: 0, not the minimum (that would risk more)");
  reset_sim();
  TraderSettings s = settings();
  s.max_lots = 0.2;
  t.Init(s);
  CHECK(std::fabs(t.LotSize(0.0030) - 0.2) < 1e-9, "capped at InpMaxLots");
  g_sim.vol_max = 0.1;
  CHECK(std::fabs(t.LotSize(0.0030) - 0.1) < 1e-9, "capped at the symbol's maximum");
  reset_sim();
  t.Init(settings());
  g_sim.tick_value = 0.9;  // e.g. a EUR account
  CHECK(std::fabs(t.LotSize(0.0030) - 0.37) < 1e-9, "tick value 0.9: 100 / 270 = 0.37");
  CHECK(t.LotSize(0.0) == 0.0, "no stop, no size");
  g_sim.equity = 5000;
  CHECK(std::fabs(t.LotSize(0.0030) - 0.18) < 1e-9, "risk follows equity");
}

static void reconcile_cycle() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "flat -> long opens: " + t.LastMessage().s);
  CHECK(held(t) == 1 && g_sim.positions.size() == 1, "holds one long");
  auto &p = g_sim.positions[0];
  CHECK(std::fabs(p.sl - (1.10010 - 0.003)) < 1e-9 && std::fabs(p.tp - (1.10010 + 0.006)) < 1e-9, "stops at ask -/+ the distances");
  CHECK(p.magic == 777, "magic number on the order");
  int sends = g_sim.order_sends;
  for (int i = 0; i < 5; i++) CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_NONE, "the same target again does nothing");
  CHECK(g_sim.order_sends == sends && g_sim.positions.size() == 1, "no order for a repeated target");
  // reversal: the long is closed and a short opened
  double vol = 0;
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_REVERSED, "long -> short reverses: " + t.LastMessage().s);
  CHECK(held(t, &vol) == -1 && std::fabs(vol - 0.33) < 1e-9 && g_sim.positions.size() == 1, "holds one short of 0.33");
  CHECK(g_sim.deals.size() == 3 && g_sim.deals[1].type == ORDER_TYPE_SELL && g_sim.deals[1].volume == 0.33 &&
            g_sim.deals[2].type == ORDER_TYPE_SELL && g_sim.deals[2].sl > g_sim.bid,
        "close 0.33 then sell with the stop above");
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_NONE, "repeated short target does nothing");
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_REVERSED && held(t) == 1, "short -> long reverses too");
  CHECK(t.Reconcile(0, 0.0, 0.0, g_sim.time) == RECONCILE_CLOSED && held(t) == 0 && g_sim.positions.empty(), "flat target closes");
  CHECK(t.Reconcile(0, 0.0, 0.0, g_sim.time) == RECONCILE_NONE, "flat and flat: nothing");
  CHECK(t.Reconcile(2, 0.003, 0.006, g_sim.time) == RECONCILE_SKIPPED && g_sim.positions.empty(), "direction 2 is refused");
}

static void foreign_positions_and_hedging() {
  reset_sim();
  g_sim.hedging = true;
  CBridgeTrader t;
  t.Init(settings());
  // someone else's long (other magic) and two of ours
  g_sim.positions.push_back(mqlcompat::SimPosition{1, "EURUSD", 1, POSITION_TYPE_BUY, 1.0, 1.1, 0, 0, 0});
  g_sim.positions.push_back(mqlcompat::SimPosition{2, "EURUSD", 777, POSITION_TYPE_BUY, 0.1, 1.1, 1.09, 0, 0});
  g_sim.positions.push_back(mqlcompat::SimPosition{3, "EURUSD", 777, POSITION_TYPE_BUY, 0.2, 1.1, 1.09, 0, 0});
  double vol = 0;
  CHECK(held(t, &vol) == 1 && std::fabs(vol - 0.3) < 1e-9, "only our positions count: long 0.3");
  CHECK(t.Reconcile(-1, 0.003, 0, g_sim.time) == RECONCILE_REVERSED, "reverse on a hedging account: " + t.LastMessage().s);
  CHECK(held(t) == -1, "ours is short now");
  bool foreign_kept = false;
  for (auto &p : g_sim.positions) foreign_kept |= (p.ticket == 1 && p.volume == 1.0);
  CHECK(foreign_kept && g_sim.positions.size() == 2, "the other EA's position is untouched");
}

static void gates() {
  reset_sim();
  CBridgeTrader t;
  TraderSettings s = settings();
  s.hour_from = 8;
  s.hour_to = 20;
  t.Init(s);
  g_sim.time = 1483228800 + 3 * 3600;  // 03:00
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_SKIPPED && g_sim.order_sends == 0, "outside hours: no order");
  g_sim.time = 1483228800 + 9 * 3600;
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "inside hours: opens");
  g_sim.time = 1483228800 + 22 * 3600;
  CHECK(t.Reconcile(0, 0, 0, g_sim.time) == RECONCILE_CLOSED, "closing is allowed outside hours");
  s.hour_from = 22;
  s.hour_to = 6;
  t.Init(s);
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "a window across midnight includes 22:00");
  t.Reconcile(0, 0, 0, g_sim.time);
  // spread
  reset_sim();
  t.Init(settings());
  g_sim.ask = g_sim.bid + 0.00050;  // 50 points
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_SKIPPED && g_sim.order_sends == 0, "spread above max: no order");
  CHECK(StringFind(t.LastMessage(), "spread") >= 0, "the reason names the spread");
  g_sim.ask = g_sim.bid + 0.0001;
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "normal spread: opens");
  g_sim.ask = g_sim.bid + 0.00050;
  CHECK(t.Reconcile(0, 0, 0, g_sim.time) == RECONCILE_CLOSED, "closing is allowed at a wide spread");
  // stops: none from the server and no fallback -> no position; a fallback -> that stop
  reset_sim();
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.0, 0.0, g_sim.time) == RECONCILE_SKIPPED && g_sim.positions.empty(), "no stop: not opened");
  s = settings();
  s.fallback_sl = 0.002;
  t.Init(s);
  CHECK(t.Reconcile(1, 0.0, 0.0, g_sim.time) == RECONCILE_OPENED && g_sim.positions[0].sl > 0, "fallback stop used");
  // stops level: a stop closer than the broker allows is moved out to it
  reset_sim();
  g_sim.stops_level = 50;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.0002, 0.0002, g_sim.time) == RECONCILE_OPENED, "tight stop widened to the stops level: " + t.LastMessage().s);
  CHECK(g_sim.positions.size() == 1 && g_sim.bid - g_sim.positions[0].sl >= 50 * g_sim.point - 1e-9, "stop at least 50 points from bid");
}

static void retcodes() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_REQUOTE};
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 2, "a requote is retried");
  t.Reconcile(0, 0, 0, g_sim.time);
  reset_sim();
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_REQUOTE, TRADE_RETCODE_PRICE_CHANGED, TRADE_RETCODE_REQUOTE};
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_FAILED && g_sim.positions.empty() && g_sim.order_sends == 3,
        "three requotes: gives up, nothing held");
  reset_sim();
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_NO_MONEY};
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_FAILED && g_sim.order_sends == 1, "no money: one try");
  CHECK(t.LastRetcode() == TRADE_RETCODE_NO_MONEY && StringFind(t.LastMessage(), "money") >= 0, "no money reported");
  reset_sim();
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_MARKET_CLOSED};
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_FAILED, "market closed fails");
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time + 10) == RECONCILE_SKIPPED && g_sim.order_sends == 1,
        "no new order within 60 s of market closed");
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time + 61) == RECONCILE_OPENED, "tries again after 60 s");
  reset_sim();
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_INVALID_STOPS};
  CHECK(t.Reconcile(-1, 0.0005, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 2, "invalid stops: retried: " + t.LastMessage().s + " sends " + std::to_string(g_sim.order_sends));
  CHECK(g_sim.positions.size() == 1 && g_sim.positions[0].sl - g_sim.ask > 0.0005 + 1e-9, "... with a wider stop");
  // a reversal whose open is refused leaves the account flat, and the next target retries the open
  reset_sim();
  t.Init(settings());
  t.Reconcile(1, 0.003, 0.006, g_sim.time);
  g_sim.forced_retcodes = {0, TRADE_RETCODE_NO_MONEY};
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_FAILED && held(t) == 0, "close ok, open refused: flat: " + t.LastMessage().s);
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && held(t) == -1, "the same target then opens");
  // a simulated server that refuses the volume step (checks our rounding reaches it)
  reset_sim();
  g_sim.vol_step = 0.05;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && std::fabs(g_sim.positions[0].volume - 0.30) < 1e-9,
        "0.333 -> 0.30 on a 0.05 step, accepted by the server: " + t.LastMessage().s);
}

// The wire to the trade: a target reply decoded by the EA's JSON code drives the reconciliation; whatever the reply
// says in words, only its direction field moves the position.
static void reply_to_trade() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  const char *texts[] = {
      "{\"v\":1,\"type\":\"target\",\"id\":\"x\",\"symbol\":\"EURUSD\",\"direction\":1,\"strength\":0.5,\"sl\":0.003,\"tp\":0.006,\"as_of\":1,\"expires\":0,\"reasons\":[\"sell the rumour\"]}",
      "{\"v\":1,\"type\":\"target\",\"id\":\"x\",\"symbol\":\"EURUSD\",\"direction\":-1,\"strength\":0.5,\"sl\":0.003,\"tp\":0.006,\"as_of\":1,\"expires\":0,\"reasons\":[\"buy buy buy\"]}",
      "{\"v\":1,\"type\":\"target\",\"id\":\"x\",\"symbol\":\"EURUSD\",\"direction\":1,\"strength\":0.5,\"sl\":0.003,\"tp\":0.006,\"as_of\":1,\"expires\":0,\"reasons\":[]}",
  };
  int expected[] = {1, -1, 1};
  for (int i = 0; i < 3; i++) {
    BridgeReply r;
    string err;
    CHECK(BridgeDecodeReply(string(texts[i]), r, err), "decodes: " + err.s);
    t.Reconcile(r.direction, r.sl, r.tp, g_sim.time);
    CHECK(held(t) == expected[i], "position follows the direction field, step " + std::to_string(i));
  }
}

static void input_checks() {
  reset_sim();
  CEABridge ea;
  CHECK(ea.CheckInputs() == string(""), "defaults are valid: " + ea.CheckInputs().s);
  InpRiskPercent = 0.0;
  CHECK(StringFind(ea.CheckInputs(), "InpRiskPercent") >= 0, "risk 0 is refused by name");
  InpRiskPercent = 1.0;
  InpEndpoint = "localhost:5555";
  CHECK(StringFind(ea.CheckInputs(), "InpEndpoint") >= 0, "an endpoint without tcp:// is refused");
  InpEndpoint = "tcp://127.0.0.1:5555";
  InpHourFrom = 5;
  InpHourTo = 5;
  CHECK(StringFind(ea.CheckInputs(), "hours") >= 0, "an empty trading window is refused");
  InpHourFrom = 0;
  InpHourTo = 24;
  InpServerKey = "short";
  CHECK(StringFind(ea.CheckInputs(), "CURVE") >= 0, "half-set CURVE keys are refused");
  InpServerKey = "";
  InpMaxLots = 0.001;
  CHECK(StringFind(ea.CheckInputs(), "minimum volume") >= 0, "max lots below the symbol minimum is refused");
  InpMaxLots = 1.0;
  CHECK(ea.Init() == INIT_SUCCEEDED, "init with valid inputs");
  CHECK(g_sim.comment.rfind("EABridge EURUSD | server ok", 0) == 0 && g_sim.comment.find('\n') == std::string::npos,
        "one status line on the chart: " + g_sim.comment);
  ea.Deinit(REASON_REMOVE);
  CHECK(g_sim.comment.empty(), "the status line is removed with the EA");
  InpSendBars = 501;
  CHECK(ea.Init() == INIT_PARAMETERS_INCORRECT, "init refuses 501 bars");
  InpSendBars = 0;
  bool alerted = false;
  for (auto &l : g_sim.log) alerted |= l.find("InpSendBars") != std::string::npos;
  CHECK(alerted, "the refusal is printed with the input's name");
}

// After a stop-loss or take-profit the EA stays flat until the target changes (the backtester's rule), while a target
// that could not be carried out (refused, gated) is tried again.
static void no_reentry_after_stop() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "opens long");
  g_sim.positions.clear();  // the trade server closed it at its stop
  int sends = g_sim.order_sends;
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_NONE && held(t) == 0 && g_sim.order_sends == sends,
        "the same target after a stop: stays flat");
  CHECK(t.Reconcile(0, 0, 0, g_sim.time) == RECONCILE_NONE && held(t) == 0, "flat target: nothing to do");
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && held(t) == 1, "a new long target opens again");
  g_sim.positions.clear();
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && held(t) == -1, "an opposite target opens");
}

int main() {
  lot_sizing();
  no_reentry_after_stop();
  reconcile_cycle();
  foreign_positions_and_hedging();
  gates();
  retcodes();
  reply_to_trade();
  input_checks();
  return harness_summary("test_trader");
}
