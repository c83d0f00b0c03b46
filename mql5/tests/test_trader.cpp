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


// Item 3 of issue 12: TimeCurrent() stops at the last quote (Friday evening) while TimeTradeServer() runs on. The
// market-closed back-off must be set and checked on one clock, and no order goes out outside the trade sessions.
static void two_clocks_and_weekends() {
  reset_sim();
  SimWeekdaySessions();
  CBridgeTrader t;
  t.Init(settings());
  datetime friday = 1483740000;        // 2017-01-06 22:00, a Friday: the last quote
  SimSetTime(friday);
  g_sim.server_now = friday + 12 * 3600;  // Saturday 10:00 on the trade server's clock; no quotes since
  CHECK(TimeCurrent() != TimeTradeServer(), "the two clocks differ at the weekend");
  int sends = g_sim.order_sends;
  for (int i = 0; i < 5; i++) t.Reconcile(1, 0.003, 0.006, TimeTradeServer() + i * 60);
  CHECK(g_sim.order_sends - sends <= 1, "at most one doomed order all weekend, sent " + std::to_string(g_sim.order_sends - sends));
  CHECK(g_sim.positions.empty(), "nothing opened at the weekend");
  // a market closed inside the sessions (a holiday): the back-off holds on the trade server's clock, although the
  // last quote is ten minutes old
  reset_sim();
  t.Init(settings());
  datetime monday = 1483920000;  // 2017-01-09 00:00
  SimSetTime(monday);
  g_sim.server_now = monday + 600;
  g_sim.forced_retcodes = {TRADE_RETCODE_MARKET_CLOSED};
  CHECK(t.Reconcile(1, 0.003, 0.006, TimeTradeServer()) == RECONCILE_FAILED, "market closed fails");
  CHECK(t.Reconcile(1, 0.003, 0.006, TimeTradeServer() + 10) == RECONCILE_SKIPPED && g_sim.order_sends == 1,
        "no new order 10 s later by the trade server's clock");
  CHECK(t.Reconcile(1, 0.003, 0.006, TimeTradeServer() + 61) == RECONCILE_OPENED, "tries again after the back-off");
  // Monday morning, quotes again: trading resumes
  reset_sim();
  SimWeekdaySessions();
  t.Init(settings());
  SimSetTime(monday + 3600);
  CHECK(t.Reconcile(1, 0.003, 0.006, TimeTradeServer()) == RECONCILE_OPENED, "inside the sessions: opens " + t.LastMessage().s);
}

// Item 4: on a netting account a symbol holds one position whatever the magic. The EA must not trade into a manual or
// another EA's position (its deals would merge into it), and says why; on hedging it trades beside it.
static void netting_and_hedging_accounts() {
  reset_sim();
  g_sim.hedging = false;
  CHECK(AccountInfoInteger(ACCOUNT_MARGIN_MODE) == ACCOUNT_MARGIN_MODE_RETAIL_NETTING, "netting account");
  CBridgeTrader t;
  t.Init(settings());
  g_sim.positions.push_back(mqlcompat::SimPosition{1, "EURUSD", 0, POSITION_TYPE_BUY, 1.0, 1.1, 0, 0, 0});  // manual
  int sends = g_sim.order_sends;
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_SKIPPED, "netting, foreign position: refused");
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_SKIPPED, "... in either direction");
  CHECK(g_sim.order_sends == sends && g_sim.positions.size() == 1 && g_sim.positions[0].volume == 1.0,
        "the manual position is untouched, no order sent");
  CHECK(StringFind(t.LastMessage(), "netting") >= 0 && StringFind(t.LastMessage(), "magic 0") >= 0,
        "the reason names the netting account and the foreign magic: " + t.LastMessage().s);
  g_sim.positions.clear();
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "once it is closed, the EA trades");
  // hedging: the same manual position does not stop the EA, which opens its own beside it
  reset_sim();
  g_sim.hedging = true;
  t.Init(settings());
  g_sim.positions.push_back(mqlcompat::SimPosition{1, "EURUSD", 0, POSITION_TYPE_BUY, 1.0, 1.1, 0, 0, 0});
  CHECK(t.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.positions.size() == 2,
        "hedging: opens its own short beside the manual long");
  CHECK(g_sim.positions[0].volume == 1.0 && held(t) == -1, "the manual long is untouched");
}

// Item 5: after a stop and a terminal restart the EA must not re-enter the target it already acted on. A new trader
// object stands for the restarted program; the terminal's global variables survive, as in gvariables.dat.
static void restart_remembers_the_acted_target() {
  reset_sim();
  {
    CBridgeTrader before;
    before.Init(settings());
    CHECK(before.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "opens long");
  }
  g_sim.positions.clear();  // stopped out while the terminal was closed
  CBridgeTrader after;
  after.Init(settings());
  int sends = g_sim.order_sends;
  CHECK(after.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_NONE && g_sim.order_sends == sends && held(after) == 0,
        "restarted, same target: stays flat");
  CHECK(after.Reconcile(-1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED, "a changed target trades");
  // another magic number or symbol has its own memory
  TraderSettings s = settings();
  s.magic = 778;
  CBridgeTrader other;
  other.Init(s);
  CHECK(other.Reconcile(1, 0.003, 0.006, g_sim.time) != RECONCILE_NONE, "another magic number is not blocked");
}

// Item 6: the invalid-stops retry widens the stop; the volume is sized again, so the risk stays within risk_percent.
static void widened_stop_keeps_the_risk() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_INVALID_STOPS};
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 2, "retried: " + t.LastMessage().s);
  auto &p = g_sim.positions[0];
  double risk = p.volume * (p.price_open - p.sl) / g_sim.tick_size * g_sim.tick_value;
  CHECK(p.price_open - p.sl > 0.003 + 1e-9, "the stop was widened");
  CHECK(risk <= 100.0 + 1e-6, "risk at the wider stop within 1% of 10,000: " + std::to_string(risk) + " with " +
                                  std::to_string(p.volume) + " lots");
}

// Item 7: filling policy by execution mode (as CTrade's FillingCheck), retcode 10030, stops on the tick-size grid and
// the stops level measured from the price the server checks.
static void filling_and_stops() {
  reset_sim();
  CBridgeTrader t;
  t.Init(settings());
  g_sim.forced_retcodes = {TRADE_RETCODE_INVALID_FILL};  // the server refuses FOK although the flags offer it
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 2,
        "10030: the next filling mode is tried: " + t.LastMessage().s);
  // market execution, IOC only: IOC
  reset_sim();
  g_sim.filling = SYMBOL_FILLING_IOC;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1, "IOC-only symbol: one order");
  // market execution, no flag: RETURN is never sent (the server would refuse it); FOK and IOC are tried, then a reason
  reset_sim();
  g_sim.filling = 0;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_FAILED && g_sim.order_sends == 2,
        "no filling accepted: two tries, then gives up");
  CHECK(StringFind(t.LastMessage(), "filling") >= 0, "the reason names the filling modes: " + t.LastMessage().s);
  // exchange execution, no flag: RETURN
  reset_sim();
  g_sim.filling = 0;
  g_sim.exemode = SYMBOL_TRADE_EXECUTION_EXCHANGE;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1, "exchange execution: RETURN");
  // instant execution: any filling is placed by the terminal
  reset_sim();
  g_sim.filling = 0;
  g_sim.exemode = SYMBOL_TRADE_EXECUTION_INSTANT;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.003, 0.006, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1, "instant execution opens");
  // tick size 0.00005 on a 5-digit symbol: stops on that grid, accepted at the first try
  reset_sim();
  g_sim.tick_size = 0.00005;
  g_sim.tick_value = 5.0;
  g_sim.bid = 1.10000;
  g_sim.ask = 1.10010;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.00333, 0.00666, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1,
        "stops on the tick grid: " + t.LastMessage().s + " sends " + std::to_string(g_sim.order_sends));
  // stops level 50 points, spread 10: a buy's stop must be 50 points below the bid, not the ask
  reset_sim();
  g_sim.stops_level = 50;
  t.Init(settings());
  CHECK(t.Reconcile(1, 0.0002, 0.0002, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1,
        "tight stop moved out from the bid: accepted at once, sends " + std::to_string(g_sim.order_sends));
  reset_sim();
  g_sim.stops_level = 50;
  t.Init(settings());
  CHECK(t.Reconcile(-1, 0.0002, 0.0002, g_sim.time) == RECONCILE_OPENED && g_sim.order_sends == 1,
        "a sell's from the ask: accepted at once");
}

// The harness models MQL_DLLS_ALLOWED: without it the EA refuses to start and says what to tick.
static void dlls_not_allowed() {
  reset_sim();
  g_sim.dlls_allowed = false;
  CEABridge ea;
  CHECK(ea.Init() == INIT_FAILED, "no DLL imports: init fails");
  bool told = false;
  for (auto &l : g_sim.log) told |= l.find("Allow DLL imports") != std::string::npos;
  CHECK(told, "the log says which box to tick");
}

// test_trader [SECTION]: every section, or only the one named (the pytest runs each as its own test).
int main(int argc, char **argv) {
  struct Section { const char *name; void (*run)(); };
  const Section sections[] = {
      {"lot_sizing", lot_sizing}, {"no_reentry_after_stop", no_reentry_after_stop}, {"reconcile_cycle", reconcile_cycle},
      {"foreign_positions_and_hedging", foreign_positions_and_hedging}, {"gates", gates}, {"retcodes", retcodes},
      {"reply_to_trade", reply_to_trade}, {"input_checks", input_checks},
      {"two_clocks_and_weekends", two_clocks_and_weekends}, {"netting_and_hedging_accounts", netting_and_hedging_accounts},
      {"restart_remembers_the_acted_target", restart_remembers_the_acted_target},
      {"widened_stop_keeps_the_risk", widened_stop_keeps_the_risk}, {"filling_and_stops", filling_and_stops},
      {"dlls_not_allowed", dlls_not_allowed},
  };
  bool found = false;
  for (auto &s : sections)
    if (argc < 2 || std::string(argv[1]) == s.name) { s.run(); found = true; }
  if (!found) { std::fprintf(stderr, "unknown section %s\n", argv[1]); return 2; }
  return harness_summary("test_trader");
}
