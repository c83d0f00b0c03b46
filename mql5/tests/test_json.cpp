// The EA's JSON code (Json.mqh) against the golden messages and against malformed replies.
//
// For every file named on the command line it prints one JSON line that the pytest compares with Python's reading
// of the same file: whether it parsed, the document re-serialised from the parsed node table (so nested objects,
// escapes and number tokens are checked), the reply as BridgeDecodeReply understood it, and, for request types the
// EA sends, the request rebuilt by the EA's own encoder from the golden's fields.
// Then it runs built-in checks on replies that must be rejected, and exits non-zero if any failed.
#include "harness.h"

// Node `i` back to JSON through CJsonWriter: numbers keep their original token.
static void dump(const CJsonDoc &doc, int node, std::string &out) {
  int t = doc.Type(node);
  if (t == JSON_OBJECT || t == JSON_ARRAY) {
    out += t == JSON_OBJECT ? "{" : "[";
    int n = doc.Count(node);
    for (int k = 0; k < n; k++) {
      int c = doc.Child(node, k);
      if (k) out += ",";
      if (t == JSON_OBJECT) out += JsonQuote(doc.Key(c)).s + ":";
      dump(doc, c, out);
    }
    out += t == JSON_OBJECT ? "}" : "]";
  } else if (t == JSON_STRING) {
    out += JsonQuote(doc.Text(node)).s;
  } else if (t == JSON_NUMBER) {
    out += doc.Text(node).s;
  } else if (t == JSON_BOOL) {
    out += doc.Bool(node) ? "true" : "false";
  } else {
    out += "null";
  }
}

static std::string q(const std::string &s) { return JsonQuote(string(s)).s; }

// Rebuild a request the EA sends from the golden's fields, through the EA's encoder.
static bool rebuild(const CJsonDoc &doc, const std::string &type, std::string &out) {
  auto member = [&](const char *k) { return doc.Member(0, k); };
  string id = doc.Text(member("id"));
  string text;
  // only complete requests: the error goldens miss or break fields on purpose, which the EA's encoder cannot do
  auto has = [&](std::initializer_list<const char *> keys) {
    for (const char *k : keys)
      if (member(k) < 0 || doc.Type(member(k)) == JSON_NULL) return false;
    return true;
  };
  if (!has({"v"}) || !doc.IsInteger(member("v")) || doc.Integer(member("v")) != BRIDGE_PROTOCOL_VERSION) return false;
  if (type == "signal") {
    if (!has({"symbol", "time", "utc_offset", "position"}) || doc.Type(member("position")) != JSON_OBJECT ||
        !doc.IsInteger(member("time")) || !doc.IsInteger(member("utc_offset")))
      return false;
    int pos = member("position");
    int direction = (int)doc.Integer(doc.Member(pos, "direction"));
    double volume = doc.Number(doc.Member(pos, "volume"));
    MqlArray<MqlRates> bars;
    int b = member("bars");
    int nb = b >= 0 ? doc.Count(b) : 0;
    ArrayResize(bars, nb);
    for (int i = 0; i < nb; i++) {
      int row = doc.Child(b, i);
      bars[i].time = (datetime)doc.Integer(doc.Child(row, 0));
      bars[i].open = doc.Number(doc.Child(row, 1));
      bars[i].high = doc.Number(doc.Child(row, 2));
      bars[i].low = doc.Number(doc.Child(row, 3));
      bars[i].close = doc.Number(doc.Child(row, 4));
    }
    int tester = member("tester");
    if (!BridgeSignalRequest(id, doc.Text(member("symbol")), (datetime)doc.Integer(member("time")),
                             doc.Integer(member("utc_offset")), direction, volume, bars, nb, 5,
                             tester >= 0 && doc.Bool(tester), text,
                             member("base") >= 0 ? doc.Text(member("base")) : string(""),
                             member("quote") >= 0 ? doc.Text(member("quote")) : string("")))
      return false;
  } else if (type == "hello") {
    if (!has({"client", "account", "symbols"})) return false;
    MqlArray<string> symbols;
    int s = member("symbols");
    for (int i = 0; i < doc.Count(s); i++) symbols.v.push_back(doc.Text(doc.Child(s, i)));
    if (!BridgeHelloRequest(id, doc.Text(member("client")), doc.Integer(member("account")), symbols, text)) return false;
  } else if (type == "ping" || type == "stats") {
    if (!BridgeBareRequest(string(type), id, text)) return false;
  } else if (type == "news" && has({"headline", "time", "utc_offset", "source", "currency", "event", "impact"})) {
    auto num = [&](const char *k) { int n = member(k); return n >= 0 && doc.Type(n) == JSON_NUMBER ? doc.Number(n) : std::nan(""); };
    if (!BridgeNewsRequest(id, doc.Text(member("headline")), (datetime)doc.Integer(member("time")),
                           doc.Integer(member("utc_offset")), doc.Text(member("source")), doc.Text(member("currency")),
                           doc.Text(member("event")), doc.Text(member("impact")), num("actual"), num("forecast"),
                           num("previous"), text))
      return false;
  } else {
    return false;  // not a request the EA sends
  }
  out = text.s;
  return true;
}

static void golden(const std::string &path) {
  std::string text = read_file(path);
  CJsonDoc doc;
  bool ok = doc.Parse(string(text));
  std::string line = "{\"file\":" + q(path) + ",\"parsed\":" + (ok ? "true" : "false");
  if (ok) {
    std::string d;
    dump(doc, 0, d);
    line += ",\"dump\":" + d;
    BridgeReply r;
    string err;
    bool decoded = BridgeDecodeReply(string(text), r, err);
    line += ",\"reply_ok\":" + std::string(decoded ? "true" : "false");
    if (decoded) {
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    ",\"reply\":{\"type\":%s,\"id\":%s,\"symbol\":%s,\"direction\":%d,\"strength\":%.17g,\"sl\":%.17g,"
                    "\"tp\":%.17g,\"as_of\":%ld,\"expires\":%ld,\"reasons\":%d,\"code\":%s,\"time\":%ld}",
                    q(r.type.s).c_str(), q(r.id.s).c_str(), q(r.symbol.s).c_str(), r.direction, r.strength, r.sl, r.tp,
                    r.as_of, r.expires, r.reasons, q(r.code.s).c_str(), r.time);
      line += buf;
    }
    int t = doc.Type(0) == JSON_OBJECT ? doc.Member(0, "type") : -1;
    std::string rebuilt;
    if (t >= 0 && doc.Type(t) == JSON_STRING && doc.Member(0, "id") >= 0 && doc.Type(doc.Member(0, "id")) == JSON_STRING &&
        rebuild(doc, doc.Text(t).s, rebuilt))
      line += ",\"rebuilt\":" + q(rebuilt);
  } else {
    line += ",\"error\":" + q(doc.Error().s);
  }
  std::printf("%s\n", (line + "}").c_str());
}

static void expect_rejected(const char *text, const char *why) {
  BridgeReply r;
  string err;
  bool ok = BridgeDecodeReply(string(text), r, err);
  CHECK(!ok, std::string("accepted a reply that ") + why + ": " + text);
  CHECK(ok || StringLen(err) > 0, std::string("rejected without a reason: ") + text);
}

static void builtin_checks() {
  const char *head = "{\"v\":1,\"type\":\"target\",\"id\":\"a\",\"symbol\":\"EURUSD\",";
  const char *tail = "\"strength\":0.5,\"sl\":0.003,\"tp\":0.006,\"as_of\":1,\"expires\":0}";
  auto target = [&](const std::string &direction) { return std::string(head) + "\"direction\":" + direction + "," + tail; };
  // direction is read as the integer it is, never inferred from text
  for (int d = -1; d <= 1; d++) {
    BridgeReply r;
    string err;
    CHECK(BridgeDecodeReply(string(target(std::to_string(d))), r, err), "valid target rejected: " + err.s);
    CHECK(r.direction == d, "direction " + std::to_string(d) + " decoded as " + std::to_string(r.direction));
  }
  expect_rejected(target("\"buy\"").c_str(), "has direction as text");
  expect_rejected(target("\"1\"").c_str(), "has direction as a string");
  expect_rejected(target("2").c_str(), "has direction 2");
  expect_rejected(target("-2").c_str(), "has direction -2");
  expect_rejected(target("1.0").c_str(), "has a fractional direction");
  expect_rejected(target("true").c_str(), "has a boolean direction");
  expect_rejected(target("null").c_str(), "has a null direction");
  expect_rejected((std::string(head) + tail).c_str(), "has no direction");
  expect_rejected("{\"v\":1,\"type\":\"sell\",\"id\":\"a\",\"comment\":\"buy\"}", "has an unknown type");
  expect_rejected("{\"v\":1,\"type\":\"targets\",\"id\":\"a\"}", "has type 'targets'");
  expect_rejected("{\"v\":2,\"type\":\"ack\",\"id\":\"a\"}", "has protocol version 2");
  expect_rejected("{\"type\":\"ack\",\"id\":\"a\"}", "has no version");
  expect_rejected("{\"v\":1,\"type\":\"ack\",\"id\":\"a\"} x", "has trailing text");
  expect_rejected("{\"v\":1,\"type\":\"ack\",\"id\":\"a\"", "is truncated");
  expect_rejected("[1,2]", "is an array");
  expect_rejected("", "is empty");
  expect_rejected("buy", "is a bare word");
  expect_rejected("{\"v\":1,\"type\":\"error\",\"id\":null}", "is an error without a code");
  expect_rejected((target("1").substr(0, target("1").size() - 1) + ",\"sl\":-1}").c_str(), "has a negative stop");
  std::string deep = "{\"v\":1,\"type\":\"ack\",\"id\":\"a\",\"x\":" + std::string(100, '[') + std::string(100, ']') + "}";
  expect_rejected(deep.c_str(), "nests 100 levels");
  // the last of repeated keys wins, as in Python's json
  BridgeReply r;
  string err;
  CHECK(BridgeDecodeReply(string(target("1").substr(0, target("1").size() - 1) + ",\"direction\":-1}"), r, err) && r.direction == -1,
        "repeated key: the last one must win");
  // escapes round-trip through the writer and the parser
  CJsonWriter w;
  w.BeginObject();
  w.Key("s");
  w.String(string("a\"b\\c\nd\te\x01"));
  w.EndObject();
  CJsonDoc doc;
  CHECK(doc.Parse(w.Text()) && doc.Text(doc.Member(0, "s")) == string("a\"b\\c\nd\te\x01"), "escape round trip: " + w.Text().s);
  CHECK(doc.Parse(string("{\"s\":\"\\u00e9\\u20ac\"}")) && doc.Text(doc.Member(0, "s")) == string("\xc3\xa9\xe2\x82\xac"),
        "\\u escapes decode to the characters");
  // non-finite numbers cannot be sent
  CJsonWriter nan_writer;
  nan_writer.BeginArray();
  nan_writer.Number(std::nan(""), 5);
  nan_writer.EndArray();
  CHECK(!nan_writer.Ok(), "a NaN must make the message invalid");
  CHECK(JsonNumber(1.0868, 5) == string("1.0868") && JsonNumber(0.0, 8) == string("0") && JsonNumber(-0.0000001, 5) == string("0"),
        "number formatting");
}

// Strings as MQL5 has them: UTF-16 code units. Calendar event names are localised and often not ASCII; the protocol's
// limit is in UTF-8 bytes, which StringLen does not count.
static void utf16_checks() {
  string euro("\xe2\x82\xac" "uro"), smile("\xf0\x9f\x98\x80"), mixed("a\xf0\x9f\x98\x80" "b\xc3\xa9");
  CHECK(StringLen(euro) == 4 && StringLen(smile) == 2 && StringLen(mixed) == 5, "StringLen counts UTF-16 units");
  CHECK(StringGetCharacter(euro, 0) == 0x20AC && StringGetCharacter(smile, 0) == 0xD83D && StringGetCharacter(smile, 1) == 0xDE00,
        "StringGetCharacter returns UTF-16 units, surrogates included");
  CHECK(StringSubstr(mixed, 1, 2) == smile && StringSubstr(mixed, 3) == string("b\xc3\xa9") && StringSubstr(mixed, 4, 1) == string("\xc3\xa9"),
        "StringSubstr cuts at UTF-16 units");
  CHECK(StringSubstr(mixed, 1, 1) + StringSubstr(mixed, 2, 1) == smile, "two halves of a surrogate pair join into the character");
  CHECK(StringFind(mixed, "b") == 3, "StringFind counts UTF-16 units");
  // a headline of 30,000 euro signs: 30,000 units, 90,000 bytes: over the 64 KiB frame limit, so not encodable
  string wide;
  for (int i = 0; i < 30000; i++) wide += "\xe2\x82\xac";
  string out;
  CHECK(StringLen(wide) == 30000 && BridgeUtf8Bytes(wide) == 90000, "30,000 units are 90,000 UTF-8 bytes");
  CHECK(!BridgeNewsRequest("n1", wide, 1704468600, 7200, "mt5-calendar", "EUR", wide, "high", 1.0, 2.0, 3.0, out),
        "a news request over 64 KiB of UTF-8 is refused although StringLen is under it");
  // escapes next to non-ASCII and astral characters survive the writer and the parser
  string name("Zinsentscheidung der \"EZB\" \xe2\x82\xac\t\xf0\x9f\x87\xaa\xf0\x9f\x87\xba");
  CJsonDoc doc;
  CHECK(doc.Parse(JsonQuote(name)) && doc.Text(0) == name, "non-ASCII round trip: " + JsonQuote(name).s);
  CHECK(doc.Parse(string("\"\\ud83d\\ude00\"")) && doc.Text(0) == smile, "a \\u surrogate pair decodes to the character");
}

// test_json news-utf8 FILE: one calendar event name per line (UTF-8) -> the news request the EA sends for it, one per
// line, for the pytest to read with Python's json.
static int news_utf8(const char *path) {
  std::ifstream f(path, std::ios::binary);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    string out;
    if (!BridgeNewsRequest(string("cal-" + std::to_string(++n)), string("EUR " + line), 1704468600, 7200, "mt5-calendar", "EUR",
                           string(line), "high", 1.5, 1.2, std::nan(""), out)) {
      std::fprintf(stderr, "cannot encode %s\n", line.c_str());
      return 1;
    }
    std::printf("%s\n", out.c_str());
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && std::string(argv[1]) == "news-utf8") return news_utf8(argv[2]);
  if (argc == 2 && std::string(argv[1]) == "utf16") {
    utf16_checks();
    std::fprintf(stderr, "test_json utf16: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
  }
  for (int i = 1; i < argc; i++) golden(argv[i]);
  builtin_checks();
  utf16_checks();
  std::fflush(stdout);
  std::fprintf(stderr, "test_json: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
