// mql5compat.h: the MQL5 built-ins the EA Bridge code uses, implemented over the C++ standard library.
//
// Together with mql5_to_cpp.py (which rewrites only what is not C++: #property, #import, input, T a[], T &a[]) this
// lets g++ compile the EA's include files and the EA itself on Linux and run them against a simulated trade server.
// The simulation (symbol, account, positions, bars, calendar, clock) lives in the global `g_sim`; tests set it up
// and read it back. Behaviour follows the MQL5 reference: array indexing is bounds-checked (MQL5 stops the program
// with "array out of range"), StringFind returns -1 when absent, CopyRates returns the oldest bar first.
// Deliberately strict where MQL5 is lenient: string + number does not compile, and StringFormat checks each
// argument's type against its conversion, so sloppy code fails here instead of formatting garbage there.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cfloat>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// ---------------------------------------------------------------- types
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;  // MQL5 ulong and long are 64-bit, as on LP64 Linux
typedef long datetime;
typedef uint color;

static_assert(sizeof(long) == 8, "the harness assumes LP64 (64-bit long), as MQL5's long");

[[noreturn]] inline void MqlCritical(const std::string &what) {
  std::fprintf(stderr, "MQL5 critical error: %s\n", what.c_str());
  std::abort();
}

namespace mqlcompat {
// Strings are stored as UTF-8 but measured as MQL5 measures them, in UTF-16 code units. A lone surrogate (half of a
// character outside the BMP, as StringSubstr or ShortToString can make) is stored as its 3-byte form; two halves
// joined become the character's 4-byte UTF-8 again, as two UTF-16 halves become one character in MQL5.
inline bool ascii(const std::string &s) {
  for (char c : s)
    if ((unsigned char)c >= 0x80) return false;
  return true;
}
inline std::u16string to_u16(const std::string &s) {
  std::u16string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = (unsigned char)s[i];
    unsigned cp = 0;
    size_t n = 1;
    if (c < 0x80) cp = c;
    else if ((c >> 5) == 6 && i + 1 < s.size()) { cp = ((c & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu); n = 2; }
    else if ((c >> 4) == 14 && i + 2 < s.size()) {
      cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6) | ((unsigned char)s[i + 2] & 0x3Fu); n = 3;
    } else if ((c >> 3) == 30 && i + 3 < s.size()) {
      cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12) | (((unsigned char)s[i + 2] & 0x3Fu) << 6) |
           ((unsigned char)s[i + 3] & 0x3Fu);
      n = 4;
    } else cp = 0xFFFD;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      o += (char16_t)(0xD800 + (cp >> 10));
      o += (char16_t)(0xDC00 + (cp & 0x3FF));
    } else o += (char16_t)cp;
    i += n;
  }
  return o;
}
inline void put_utf8(std::string &o, unsigned cp) {
  if (cp < 0x80) o += (char)cp;
  else if (cp < 0x800) { o += (char)(0xC0 | (cp >> 6)); o += (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { o += (char)(0xE0 | (cp >> 12)); o += (char)(0x80 | ((cp >> 6) & 0x3F)); o += (char)(0x80 | (cp & 0x3F)); }
  else {
    o += (char)(0xF0 | (cp >> 18)); o += (char)(0x80 | ((cp >> 12) & 0x3F));
    o += (char)(0x80 | ((cp >> 6) & 0x3F)); o += (char)(0x80 | (cp & 0x3F));
  }
}
inline std::string from_u16(const std::u16string &u) {
  std::string o;
  for (size_t i = 0; i < u.size(); i++) {
    unsigned c = u[i];
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < u.size() && u[i + 1] >= 0xDC00 && u[i + 1] < 0xE000) {
      put_utf8(o, 0x10000 + ((c - 0xD800) << 10) + (unsigned)(u[i + 1] - 0xDC00));
      i++;
    } else put_utf8(o, c);
  }
  return o;
}
// a + b, re-pairing a high surrogate at the end of a with a low one at the start of b
inline std::string join(const std::string &a, const std::string &b) {
  size_t n = a.size();
  if (n >= 3 && b.size() >= 3 && (unsigned char)a[n - 3] == 0xED && ((unsigned char)a[n - 2] & 0xF0) == 0xA0 &&
      (unsigned char)b[0] == 0xED && ((unsigned char)b[1] & 0xF0) == 0xB0)
    return a.substr(0, n - 3) + from_u16(to_u16(a.substr(n - 3) + b.substr(0, 3))) + b.substr(3);
  return a + b;
}
}  // namespace mqlcompat

// MQL5 string: a value type of UTF-16 code units; here it holds their UTF-8 form, and every function that counts or
// indexes (StringLen, StringGetCharacter, StringSubstr, StringFind) counts UTF-16 units, as MQL5 does.
class string {
 public:
  std::string s;
  string() {}
  string(const char *c) : s(c ? c : "") {}
  string(const std::string &x) : s(x) {}
  string &operator+=(const string &o) { s = mqlcompat::join(s, o.s); return *this; }
  string &operator+=(const char *o) { s = mqlcompat::join(s, o); return *this; }
  template <class N, class = typename std::enable_if<std::is_arithmetic<N>::value>::type>
  string &operator+=(N) = delete;  // MQL5 would convert the number; we make the conversion explicit
  const char *c_str() const { return s.c_str(); }
};
inline string operator+(const string &a, const string &b) { return string(mqlcompat::join(a.s, b.s)); }
inline string operator+(const string &a, const char *b) { return string(mqlcompat::join(a.s, b)); }
inline string operator+(const char *a, const string &b) { return string(mqlcompat::join(a, b.s)); }
template <class N, class = typename std::enable_if<std::is_arithmetic<N>::value>::type>
string operator+(const string &, N) = delete;
template <class N, class = typename std::enable_if<std::is_arithmetic<N>::value>::type>
string operator+(N, const string &) = delete;
inline bool operator==(const string &a, const string &b) { return a.s == b.s; }
inline bool operator!=(const string &a, const string &b) { return a.s != b.s; }
inline bool operator<(const string &a, const string &b) { return a.s < b.s; }
inline bool operator>(const string &a, const string &b) { return a.s > b.s; }
inline bool operator==(const string &a, const char *b) { return a.s == b; }
inline bool operator!=(const string &a, const char *b) { return a.s != b; }
inline std::ostream &operator<<(std::ostream &o, const string &x) { return o << x.s; }

// MQL5 dynamic array `T a[]`: resizable, bounds-checked.
template <class T>
class MqlArray {
 public:
  std::vector<T> v;
  bool series = false;
  MqlArray() {}
  MqlArray(std::initializer_list<T> init) : v(init) {}
  T &operator[](long i) {
    if (i < 0 || i >= (long)v.size()) MqlCritical("array out of range: index " + std::to_string(i) + " of " + std::to_string(v.size()));
    return series ? v[v.size() - 1 - (size_t)i] : v[(size_t)i];
  }
  const T &operator[](long i) const {
    if (i < 0 || i >= (long)v.size()) MqlCritical("array out of range: index " + std::to_string(i) + " of " + std::to_string(v.size()));
    return series ? v[v.size() - 1 - (size_t)i] : v[(size_t)i];
  }
  T *data() { return v.data(); }
  const T *data() const { return v.data(); }
};

#define WHOLE_ARRAY -1
#define EMPTY_VALUE DBL_MAX
#define WRONG_VALUE -1
#define CP_ACP 0
#define CP_UTF8 65001
#define clrNONE 0xFFFFFFFFu
#define INVALID_HANDLE -1
#define CHARTS_MAX 100

template <class T> int ArraySize(const MqlArray<T> &a) { return (int)a.v.size(); }
template <class T, size_t N> int ArraySize(const T (&)[N]) { return (int)N; }
template <class T> int ArrayResize(MqlArray<T> &a, int n, int reserve = 0) {
  if (n < 0) return -1;
  if (reserve > 0) a.v.reserve((size_t)n + (size_t)reserve);
  a.v.resize((size_t)n);
  return n;
}
template <class T> void ArrayFree(MqlArray<T> &a) { a.v.clear(); a.v.shrink_to_fit(); }
template <class T> bool ArraySetAsSeries(MqlArray<T> &a, bool s) { a.series = s; return true; }
template <class T> int ArrayCopy(MqlArray<T> &dst, const MqlArray<T> &src, int dst_start = 0, int src_start = 0, int count = WHOLE_ARRAY) {
  int n = count < 0 ? (int)src.v.size() - src_start : std::min(count, (int)src.v.size() - src_start);
  if (n <= 0) return 0;
  if ((int)dst.v.size() < dst_start + n) dst.v.resize((size_t)(dst_start + n));
  for (int i = 0; i < n; i++) dst.v[(size_t)(dst_start + i)] = src.v[(size_t)(src_start + i)];
  return n;
}
template <class T> void ZeroMemory(T &x) { x = T(); }
template <class T> void ZeroMemory(MqlArray<T> &a) { for (auto &e : a.v) e = T(); }

// ---------------------------------------------------------------- errors and output
inline int &mql_last_error() { static int e = 0; return e; }
#define _LastError (mql_last_error())
inline int GetLastError() { return mql_last_error(); }
inline void ResetLastError() { mql_last_error() = 0; }
inline void SetUserError(ushort e) { mql_last_error() = 65536 + e; }
#define ERR_USER_ERROR_FIRST 65536
#define ERR_FUNCTION_NOT_ALLOWED 4014
#define ERR_NOT_ENOUGH_MEMORY 4004

namespace mqlcompat {
inline std::string to_text(const string &x) { return x.s; }
inline std::string to_text(const char *x) { return x; }
inline std::string to_text(bool x) { return x ? "true" : "false"; }
inline std::string to_text(char x) { return std::to_string((int)x); }
inline std::string to_text(uchar x) { return std::to_string((int)x); }
template <class N> typename std::enable_if<std::is_integral<N>::value, std::string>::type to_text(N x) { return std::to_string(x); }
template <class N> typename std::enable_if<std::is_enum<N>::value, std::string>::type to_text(N x) { return std::to_string((long)x); }
inline std::string to_text(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.16g", x);
  return b;
}
inline std::string concat() { return ""; }
template <class A, class... R> std::string concat(const A &a, const R &...r) { return to_text(a) + concat(r...); }

// One formatted argument: its kind decides which conversions accept it.
struct FmtArg {
  enum Kind { INT, DBL, STR } kind;
  explicit FmtArg(Kind k) : kind(k) {}
  long long i = 0;
  double d = 0;
  std::string s;
};
inline FmtArg fmt_arg(const string &x) { FmtArg a(FmtArg::STR); a.s = x.s; return a; }
inline FmtArg fmt_arg(const char *x) { FmtArg a(FmtArg::STR); a.s = x; return a; }
inline FmtArg fmt_arg(double x) { FmtArg a(FmtArg::DBL); a.d = x; return a; }
inline FmtArg fmt_arg(float x) { FmtArg a(FmtArg::DBL); a.d = x; return a; }
template <class N> typename std::enable_if<std::is_integral<N>::value || std::is_enum<N>::value, FmtArg>::type fmt_arg(N x) {
  FmtArg a(FmtArg::INT); a.i = (long long)x; return a;
}
std::string format(const char *fmt, const std::vector<FmtArg> &args);

// Simulated terminal state: symbol, account, positions, bars, calendar, clock. Tests set it up and read it back.
struct SimDeal {
  long ticket;
  int type;  // ORDER_TYPE_BUY / ORDER_TYPE_SELL
  double volume, price, sl, tp;
  long position;
  long magic;
  datetime time;
  string comment;
};
struct SimPosition {
  long ticket;
  string symbol;
  long magic;
  int type;  // POSITION_TYPE_BUY / POSITION_TYPE_SELL
  double volume, price_open, sl, tp;
  datetime time;
};
struct SimBar {
  datetime time;
  double open, high, low, close;
  long tick_volume;
  int spread;
};
struct Sim {
  // Two clocks, as the terminal has them: `time` is TimeCurrent(), the time of the last quote, which stops when quotes
  // stop (Friday evening, holidays); `server_now` is TimeTradeServer(), the trade server's clock, which runs on.
  // SimSetTime() moves both (a quote arrives); a weekend moves only server_now. TimeGMT() = server_now - utc_offset
  // live; in the tester TimeGMT() and TimeTradeServer() equal TimeCurrent().
  datetime time = 1483228800;  // 2017-01-01
  datetime server_now = 1483228800;
  long utc_offset = 0;
  // trade sessions per day of week (0 = Sunday), seconds from midnight [from, to); all empty = always open
  std::vector<std::pair<long, long>> sessions[7];
  bool dlls_allowed = true;
  // terminal global variables (GlobalVariableSet ...): they survive an EA's re-init and a terminal restart
  std::map<std::string, double> globals;
  bool tester = false;
  // symbol
  string symbol = "EURUSD";
  int digits = 5;
  double point = 0.00001, bid = 1.10000, ask = 1.10010;
  double tick_size = 0.00001, tick_value = 1.0;  // per lot, account currency (USD account, xxxUSD pair, 100k lot)
  double contract_size = 100000, vol_min = 0.01, vol_max = 100, vol_step = 0.01, vol_limit = 0;
  long stops_level = 0, freeze_level = 0, filling = 3 /* FOK|IOC */, trade_mode = 4 /* full */;
  long exemode = 2;  // SYMBOL_TRADE_EXECUTION_MARKET, what most FX brokers' symbols use
  bool trade_allowed = true;
  // account
  double balance = 10000, equity = 10000, margin_per_lot = 1000;
  bool hedging = false;
  // positions and the trade log
  std::vector<SimPosition> positions;
  std::vector<SimDeal> deals;
  long next_ticket = 1000;
  long selected = -1;  // index into positions
  // scripted return codes for the next OrderSend calls (0 = execute normally)
  std::deque<uint> forced_retcodes;
  int order_sends = 0;
  // bars of the chart symbol, oldest first; `bar_index` is the current (forming) bar
  std::vector<SimBar> bars;
  long bar_index = -1;
  // chart and events
  std::string comment;
  std::vector<std::string> log;
  bool echo = false;
  int timer_ms = 0;
  std::map<std::string, std::string> files;  // FileOpen writes here (name -> content)
};
}  // namespace mqlcompat

inline mqlcompat::Sim &g_sim_instance() { static mqlcompat::Sim s; return s; }
#define g_sim (g_sim_instance())

template <class... A> void Print(const A &...a) {
  std::string line = mqlcompat::concat(a...);
  g_sim.log.push_back(line);
  if (g_sim.echo) std::fprintf(stderr, "%s\n", line.c_str());
}
template <class... A> void Alert(const A &...a) { Print("ALERT: ", a...); }
template <class... A> string StringFormat(const string &fmt, const A &...a) {
  return string(mqlcompat::format(fmt.c_str(), std::vector<mqlcompat::FmtArg>{mqlcompat::fmt_arg(a)...}));
}
template <class... A> void PrintFormat(const string &fmt, const A &...a) { Print(StringFormat(fmt, a...)); }
template <class... A> void Comment(const A &...a) { g_sim.comment = mqlcompat::concat(a...); }

inline std::string mqlcompat::format(const char *fmt, const std::vector<FmtArg> &args) {
  std::string out;
  size_t n = 0;
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') { out += *p; continue; }
    if (p[1] == '%') { out += '%'; p++; continue; }
    std::string spec = "%";
    p++;
    while (*p && std::strchr("-+ #0", *p)) spec += *p++;
    while (*p && (std::isdigit((unsigned char)*p) || *p == '.')) spec += *p++;
    bool ll = false;
    while (*p == 'l' || *p == 'h' || (p[0] == 'I' && p[1] == '6' && p[2] == '4')) {
      if (*p == 'I') p += 3; else p++;
      ll = true;
    }
    (void)ll;
    char conv = *p;
    if (!conv) MqlCritical(std::string("StringFormat: format ends inside a conversion: ") + fmt);
    if (n >= args.size()) MqlCritical(std::string("StringFormat: too few arguments for ") + fmt);
    const FmtArg &a = args[n++];
    char buf[512];
    if (std::strchr("diuxXoc", conv)) {
      if (a.kind != FmtArg::INT) MqlCritical(std::string("StringFormat: %") + conv + " needs an integer in " + fmt);
      std::string f = spec + "ll" + conv;
      if (conv == 'c') f = spec + "c";
      std::snprintf(buf, sizeof buf, f.c_str(), a.i);
    } else if (std::strchr("feEgG", conv)) {
      if (a.kind != FmtArg::DBL) MqlCritical(std::string("StringFormat: %") + conv + " needs a double in " + fmt);
      std::snprintf(buf, sizeof buf, (spec + conv).c_str(), a.d);
    } else if (conv == 's') {
      if (a.kind != FmtArg::STR) MqlCritical(std::string("StringFormat: %s needs a string in ") + fmt);
      std::snprintf(buf, sizeof buf, (spec + "s").c_str(), a.s.c_str());
    } else {
      MqlCritical(std::string("StringFormat: unsupported conversion %") + conv);
    }
    out += buf;
  }
  if (n != args.size()) MqlCritical(std::string("StringFormat: too many arguments for ") + fmt);
  return out;
}

// ---------------------------------------------------------------- strings
inline int StringLen(const string &s) {
  return mqlcompat::ascii(s.s) ? (int)s.s.size() : (int)mqlcompat::to_u16(s.s).size();
}
inline int StringFind(const string &s, const string &what, int start = 0) {
  if (start < 0) start = 0;
  if (mqlcompat::ascii(s.s) && mqlcompat::ascii(what.s)) {
    size_t r = s.s.find(what.s, (size_t)start);
    return r == std::string::npos ? -1 : (int)r;
  }
  std::u16string u = mqlcompat::to_u16(s.s), w = mqlcompat::to_u16(what.s);
  size_t r = u.find(w, (size_t)start);
  return r == std::u16string::npos ? -1 : (int)r;
}
inline string StringSubstr(const string &s, int start, int length = -1) {
  if (mqlcompat::ascii(s.s)) {
    if (start < 0 || start >= (int)s.s.size()) return string("");
    return string(length < 0 ? s.s.substr((size_t)start) : s.s.substr((size_t)start, (size_t)length));
  }
  std::u16string u = mqlcompat::to_u16(s.s);
  if (start < 0 || start >= (int)u.size()) return string("");
  return string(mqlcompat::from_u16(length < 0 ? u.substr((size_t)start) : u.substr((size_t)start, (size_t)length)));
}
inline ushort StringGetCharacter(const string &s, int pos) {
  if (mqlcompat::ascii(s.s)) {
    if (pos < 0 || pos >= (int)s.s.size()) return 0;
    return (ushort)(uchar)s.s[(size_t)pos];
  }
  std::u16string u = mqlcompat::to_u16(s.s);
  if (pos < 0 || pos >= (int)u.size()) return 0;
  return (ushort)u[(size_t)pos];
}
// MQL5 characters are UTF-16 units; here one unit becomes its UTF-8 bytes (a lone surrogate encodes as itself).
inline string ShortToString(ushort c) {
  std::string o;
  mqlcompat::put_utf8(o, c);
  return string(o);
}
inline int StringReplace(string &s, const string &find, const string &repl) {
  if (find.s.empty()) return -1;
  int n = 0;
  size_t pos = 0;
  while ((pos = s.s.find(find.s, pos)) != std::string::npos) { s.s.replace(pos, find.s.size(), repl.s); pos += repl.s.size(); n++; }
  return n;
}
inline int StringTrimLeft(string &s) { size_t i = s.s.find_first_not_of(" \t\r\n"); int n = (int)(i == std::string::npos ? s.s.size() : i); s.s.erase(0, (size_t)n); return n; }
inline int StringTrimRight(string &s) { size_t i = s.s.find_last_not_of(" \t\r\n"); size_t keep = i == std::string::npos ? 0 : i + 1; int n = (int)(s.s.size() - keep); s.s.erase(keep); return n; }
inline string StringToUpper_copy(const string &s) { std::string o = s.s; for (auto &c : o) c = (char)std::toupper((unsigned char)c); return string(o); }
inline bool StringToUpper(string &s) { s = StringToUpper_copy(s); return true; }
inline bool StringToLower(string &s) { for (auto &c : s.s) c = (char)std::tolower((unsigned char)c); return true; }
inline int StringSplit(const string &s, ushort sep, MqlArray<string> &out) {
  out.v.clear();
  std::string cur;
  for (char c : s.s) { if ((uchar)c == sep) { out.v.push_back(string(cur)); cur.clear(); } else cur += c; }
  out.v.push_back(string(cur));
  return (int)out.v.size();
}
inline double StringToDouble(const string &s) { return std::strtod(s.c_str(), nullptr); }
inline long StringToInteger(const string &s) { return std::strtol(s.c_str(), nullptr, 10); }
inline string IntegerToString(long v, int len = 0, ushort fill = ' ') {
  std::string o = std::to_string(v);
  while ((int)o.size() < len) o.insert(o.begin(), (char)fill);
  return string(o);
}
inline string DoubleToString(double v, int digits = 8) {
  char b[128];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return string(b);
}
// Copies the string's bytes and a terminating zero; returns how many were copied, as MQL5 does.
inline int StringToCharArray(const string &s, MqlArray<uchar> &a, int start = 0, int count = WHOLE_ARRAY, uint codepage = CP_ACP) {
  (void)codepage;
  int n = (int)s.s.size() + 1;
  if (count >= 0 && count < n) n = count;
  if ((int)a.v.size() < start + n) a.v.resize((size_t)(start + n));
  for (int i = 0; i < n; i++) a.v[(size_t)(start + i)] = i < (int)s.s.size() ? (uchar)s.s[(size_t)i] : 0;
  return n;
}
// MQL5 documents count as a number of elements or -1 (up to the terminating zero); 0 is not documented, so it stops
// the program here: code must not depend on what the terminal does with it.
inline string CharArrayToString(const MqlArray<uchar> &a, int start = 0, int count = WHOLE_ARRAY, uint codepage = CP_ACP) {
  (void)codepage;
  if (count == 0) MqlCritical("CharArrayToString with count 0: undocumented in MQL5, guard it");
  std::string o;
  for (int i = start; i < (int)a.v.size() && (count < 0 || i < start + count); i++) {
    if (a.v[(size_t)i] == 0) break;
    o += (char)a.v[(size_t)i];
  }
  return string(o);
}

// ---------------------------------------------------------------- math
inline double MathAbs(double x) { return std::fabs(x); }
inline double MathFloor(double x) { return std::floor(x); }
inline double MathCeil(double x) { return std::ceil(x); }
inline double MathRound(double x) { return std::round(x); }
inline double MathPow(double a, double b) { return std::pow(a, b); }
inline double MathSqrt(double x) { return std::sqrt(x); }
inline double MathLog10(double x) { return std::log10(x); }
template <class A, class B> auto MathMax(A a, B b) -> decltype(a + b) { return a > b ? a : b; }
template <class A, class B> auto MathMin(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
inline bool MathIsValidNumber(double x) { return std::isfinite(x); }
inline double NormalizeDouble(double v, int digits) { double m = std::pow(10.0, digits); return std::round(v * m) / m; }

// ---------------------------------------------------------------- time
struct MqlDateTime { int year, mon, day, hour, min, sec, day_of_week, day_of_year; };
inline bool TimeToStruct(datetime t, MqlDateTime &s) {
  time_t tt = (time_t)t;
  struct tm g;
  gmtime_r(&tt, &g);
  s.year = g.tm_year + 1900; s.mon = g.tm_mon + 1; s.day = g.tm_mday; s.hour = g.tm_hour; s.min = g.tm_min; s.sec = g.tm_sec;
  s.day_of_week = g.tm_wday; s.day_of_year = g.tm_yday;
  return true;
}
inline datetime StructToTime(MqlDateTime &s) {
  struct tm g{};
  g.tm_year = s.year - 1900; g.tm_mon = s.mon - 1; g.tm_mday = s.day; g.tm_hour = s.hour; g.tm_min = s.min; g.tm_sec = s.sec;
  return (datetime)timegm(&g);
}
#define TIME_DATE 1
#define TIME_MINUTES 2
#define TIME_SECONDS 4
inline string TimeToString(datetime t, int mode = TIME_DATE | TIME_MINUTES) {
  MqlDateTime s; TimeToStruct(t, s);
  char b[64] = "";
  std::string o;
  if (mode & TIME_DATE) { std::snprintf(b, sizeof b, "%04d.%02d.%02d", s.year, s.mon, s.day); o += b; }
  if (mode & (TIME_MINUTES | TIME_SECONDS)) {
    if (!o.empty()) o += " ";
    if (mode & TIME_SECONDS) std::snprintf(b, sizeof b, "%02d:%02d:%02d", s.hour, s.min, s.sec);
    else std::snprintf(b, sizeof b, "%02d:%02d", s.hour, s.min);
    o += b;
  }
  return string(o);
}
inline datetime TimeCurrent() { return g_sim.time; }
inline datetime TimeTradeServer() { return g_sim.tester ? g_sim.time : g_sim.server_now; }
// In the Strategy Tester TimeGMT() equals the simulated server time; live it is the real UTC clock.
inline datetime TimeGMT() { return g_sim.tester ? g_sim.time : g_sim.server_now - g_sim.utc_offset; }
inline datetime TimeLocal() { return TimeTradeServer(); }
// A quote arrives at t: both clocks move.
inline void SimSetTime(datetime t) { g_sim.time = t; g_sim.server_now = t; }
// Monday..Friday open all day, Saturday and Sunday closed: the weekend as a broker's FX symbol has it.
inline void SimWeekdaySessions() {
  for (int d = 0; d < 7; d++) g_sim.sessions[d].clear();
  for (int d = 1; d <= 5; d++) g_sim.sessions[d].push_back({0, 86400});
}
inline bool SimInSession(datetime t) {
  bool any = false;
  for (auto &d : g_sim.sessions) any |= !d.empty();
  if (!any) return true;
  long day = ((t / 86400) + 4) % 7, sec = t % 86400;  // 1970-01-01 was a Thursday
  for (auto &s : g_sim.sessions[day])
    if (sec >= s.first && sec < s.second) return true;
  return false;
}
inline uint GetTickCount() { return (uint)std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
inline ulong GetTickCount64() { return (ulong)std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
inline ulong GetMicrosecondCount() { return (ulong)std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
inline void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---------------------------------------------------------------- program and terminal
enum ENUM_MQL_INFO_INTEGER { MQL_TESTER, MQL_OPTIMIZATION, MQL_VISUAL_MODE, MQL_DLLS_ALLOWED, MQL_TRADE_ALLOWED };
inline int MQLInfoInteger(ENUM_MQL_INFO_INTEGER p) {
  switch (p) {
    case MQL_TESTER: return g_sim.tester ? 1 : 0;
    case MQL_DLLS_ALLOWED: return g_sim.dlls_allowed ? 1 : 0;
    case MQL_TRADE_ALLOWED: return g_sim.trade_allowed ? 1 : 0;
    default: return 0;
  }
}
enum ENUM_TERMINAL_INFO_INTEGER { TERMINAL_DLLS_ALLOWED, TERMINAL_TRADE_ALLOWED, TERMINAL_CONNECTED };
inline int TerminalInfoInteger(ENUM_TERMINAL_INFO_INTEGER p) {
  return p == TERMINAL_TRADE_ALLOWED ? (g_sim.trade_allowed ? 1 : 0) : 1;
}
enum { INIT_SUCCEEDED = 0, INIT_FAILED = 1, INIT_PARAMETERS_INCORRECT = 32767, INIT_AGENT_NOT_SUITABLE = 32766 };
enum { REASON_PROGRAM = 0, REASON_REMOVE = 1, REASON_RECOMPILE = 2, REASON_CHARTCHANGE = 3, REASON_CHARTCLOSE = 4, REASON_PARAMETERS = 5 };
inline bool EventSetTimer(int seconds) { g_sim.timer_ms = seconds * 1000; return true; }
inline bool EventSetMillisecondTimer(int ms) { g_sim.timer_ms = ms; return true; }
inline void EventKillTimer() { g_sim.timer_ms = 0; }
inline bool IsStopped() { return false; }
inline void ExpertRemove() { Print("ExpertRemove called"); }

// ---------------------------------------------------------------- symbol
#define _Symbol (g_sim.symbol)
#define _Point (g_sim.point)
#define _Digits (g_sim.digits)
inline string Symbol() { return g_sim.symbol; }
enum ENUM_SYMBOL_INFO_DOUBLE {
  SYMBOL_BID, SYMBOL_ASK, SYMBOL_POINT, SYMBOL_TRADE_TICK_SIZE, SYMBOL_TRADE_TICK_VALUE, SYMBOL_TRADE_CONTRACT_SIZE,
  SYMBOL_VOLUME_MIN, SYMBOL_VOLUME_MAX, SYMBOL_VOLUME_STEP, SYMBOL_VOLUME_LIMIT
};
enum ENUM_SYMBOL_INFO_INTEGER {
  SYMBOL_DIGITS, SYMBOL_SPREAD, SYMBOL_TRADE_STOPS_LEVEL, SYMBOL_TRADE_FREEZE_LEVEL, SYMBOL_FILLING_MODE, SYMBOL_TRADE_MODE, SYMBOL_SELECT,
  SYMBOL_TRADE_EXEMODE
};
enum ENUM_SYMBOL_TRADE_EXECUTION { SYMBOL_TRADE_EXECUTION_REQUEST = 0, SYMBOL_TRADE_EXECUTION_INSTANT = 1, SYMBOL_TRADE_EXECUTION_MARKET = 2, SYMBOL_TRADE_EXECUTION_EXCHANGE = 3 };
enum ENUM_DAY_OF_WEEK { SUNDAY = 0, MONDAY = 1, TUESDAY = 2, WEDNESDAY = 3, THURSDAY = 4, FRIDAY = 5, SATURDAY = 6 };
#define SYMBOL_FILLING_FOK 1
#define SYMBOL_FILLING_IOC 2
enum ENUM_SYMBOL_TRADE_MODE { SYMBOL_TRADE_MODE_DISABLED = 0, SYMBOL_TRADE_MODE_LONGONLY = 1, SYMBOL_TRADE_MODE_SHORTONLY = 2, SYMBOL_TRADE_MODE_CLOSEONLY = 3, SYMBOL_TRADE_MODE_FULL = 4 };
inline bool mql_known_symbol(const string &s) {
  if (s == g_sim.symbol) return true;
  mql_last_error() = 4301;  // ERR_MARKET_UNKNOWN_SYMBOL
  return false;
}
inline double SymbolInfoDouble(const string &sym, ENUM_SYMBOL_INFO_DOUBLE p) {
  if (!mql_known_symbol(sym)) return 0;
  switch (p) {
    case SYMBOL_BID: return g_sim.bid;
    case SYMBOL_ASK: return g_sim.ask;
    case SYMBOL_POINT: return g_sim.point;
    case SYMBOL_TRADE_TICK_SIZE: return g_sim.tick_size;
    case SYMBOL_TRADE_TICK_VALUE: return g_sim.tick_value;
    case SYMBOL_TRADE_CONTRACT_SIZE: return g_sim.contract_size;
    case SYMBOL_VOLUME_MIN: return g_sim.vol_min;
    case SYMBOL_VOLUME_MAX: return g_sim.vol_max;
    case SYMBOL_VOLUME_STEP: return g_sim.vol_step;
    case SYMBOL_VOLUME_LIMIT: return g_sim.vol_limit;
  }
  return 0;
}
inline long SymbolInfoInteger(const string &sym, ENUM_SYMBOL_INFO_INTEGER p) {
  if (!mql_known_symbol(sym)) return 0;
  switch (p) {
    case SYMBOL_DIGITS: return g_sim.digits;
    case SYMBOL_SPREAD: return (long)std::llround((g_sim.ask - g_sim.bid) / g_sim.point);
    case SYMBOL_TRADE_STOPS_LEVEL: return g_sim.stops_level;
    case SYMBOL_TRADE_FREEZE_LEVEL: return g_sim.freeze_level;
    case SYMBOL_FILLING_MODE: return g_sim.filling;
    case SYMBOL_TRADE_MODE: return g_sim.trade_mode;
    case SYMBOL_SELECT: return 1;
    case SYMBOL_TRADE_EXEMODE: return g_sim.exemode;
  }
  return 0;
}
enum ENUM_SYMBOL_INFO_STRING { SYMBOL_CURRENCY_BASE, SYMBOL_CURRENCY_PROFIT, SYMBOL_CURRENCY_MARGIN, SYMBOL_DESCRIPTION };
// A forex pair's currencies from its name, as brokers name them (EURUSD, EURUSD.m).
inline string SymbolInfoString(const string &sym, ENUM_SYMBOL_INFO_STRING p) {
  if (!mql_known_symbol(sym)) return string("");
  switch (p) {
    case SYMBOL_CURRENCY_BASE: case SYMBOL_CURRENCY_MARGIN: return string(sym.s.substr(0, 3));
    case SYMBOL_CURRENCY_PROFIT: return string(sym.s.substr(3, 3));
    default: return sym;
  }
}
struct MqlTick { datetime time; double bid, ask, last; ulong volume; long time_msc; uint flags; double volume_real; };
inline bool SymbolInfoTick(const string &sym, MqlTick &t) {
  if (!mql_known_symbol(sym)) return false;
  t = MqlTick();
  t.time = g_sim.time; t.bid = g_sim.bid; t.ask = g_sim.ask; t.time_msc = g_sim.time * 1000;
  return true;
}
inline bool SymbolSelect(const string &sym, bool) { return mql_known_symbol(sym); }
// The symbol's trade sessions of one day, as times of day (1970-01-01 + seconds). No sessions set: one all day.
inline bool SymbolInfoSessionTrade(const string &sym, ENUM_DAY_OF_WEEK day, uint index, datetime &from, datetime &to) {
  if (!mql_known_symbol(sym)) return false;
  bool any = false;
  for (auto &d : g_sim.sessions) any |= !d.empty();
  if (!any) {
    if (index != 0) return false;
    from = 0; to = 86400;
    return true;
  }
  auto &d = g_sim.sessions[(int)day];
  if (index >= d.size()) return false;
  from = d[index].first; to = d[index].second;
  return true;
}

// ---------------------------------------------------------------- terminal global variables
inline datetime GlobalVariableSet(const string &name, double value) {
  if (name.s.empty() || name.s.size() > 63) { mql_last_error() = 4501; return 0; }
  g_sim.globals[name.s] = value;
  return TimeTradeServer();
}
inline bool GlobalVariableCheck(const string &name) { return g_sim.globals.count(name.s) != 0; }
inline double GlobalVariableGet(const string &name) {
  auto it = g_sim.globals.find(name.s);
  if (it == g_sim.globals.end()) { mql_last_error() = 4501; return 0; }
  return it->second;
}
inline bool GlobalVariableDel(const string &name) { return g_sim.globals.erase(name.s) != 0; }
inline void GlobalVariablesFlush() {}

// ---------------------------------------------------------------- account
enum ENUM_ACCOUNT_INFO_DOUBLE { ACCOUNT_BALANCE, ACCOUNT_EQUITY, ACCOUNT_MARGIN_FREE };
enum ENUM_ACCOUNT_INFO_INTEGER { ACCOUNT_LOGIN, ACCOUNT_MARGIN_MODE, ACCOUNT_TRADE_ALLOWED, ACCOUNT_TRADE_EXPERT };
enum ENUM_ACCOUNT_MARGIN_MODE { ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0, ACCOUNT_MARGIN_MODE_EXCHANGE = 1, ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2 };
inline double mql_used_margin() {
  double v = 0;
  for (auto &p : g_sim.positions) v += p.volume * g_sim.margin_per_lot;
  return v;
}
inline double AccountInfoDouble(ENUM_ACCOUNT_INFO_DOUBLE p) {
  switch (p) {
    case ACCOUNT_BALANCE: return g_sim.balance;
    case ACCOUNT_EQUITY: return g_sim.equity;
    case ACCOUNT_MARGIN_FREE: return g_sim.equity - mql_used_margin();
  }
  return 0;
}
inline long AccountInfoInteger(ENUM_ACCOUNT_INFO_INTEGER p) {
  switch (p) {
    case ACCOUNT_LOGIN: return 12345678;
    case ACCOUNT_MARGIN_MODE: return g_sim.hedging ? ACCOUNT_MARGIN_MODE_RETAIL_HEDGING : ACCOUNT_MARGIN_MODE_RETAIL_NETTING;
    case ACCOUNT_TRADE_ALLOWED: case ACCOUNT_TRADE_EXPERT: return g_sim.trade_allowed ? 1 : 0;
  }
  return 0;
}

// ---------------------------------------------------------------- positions
enum ENUM_POSITION_TYPE { POSITION_TYPE_BUY = 0, POSITION_TYPE_SELL = 1 };
enum ENUM_POSITION_PROPERTY_DOUBLE { POSITION_VOLUME, POSITION_PRICE_OPEN, POSITION_SL, POSITION_TP };
enum ENUM_POSITION_PROPERTY_INTEGER { POSITION_TICKET, POSITION_TYPE, POSITION_MAGIC, POSITION_TIME };
enum ENUM_POSITION_PROPERTY_STRING { POSITION_SYMBOL, POSITION_COMMENT };
inline int PositionsTotal() { return (int)g_sim.positions.size(); }
inline ulong PositionGetTicket(int i) {
  if (i < 0 || i >= (int)g_sim.positions.size()) { g_sim.selected = -1; return 0; }
  g_sim.selected = i;
  return (ulong)g_sim.positions[(size_t)i].ticket;
}
inline bool PositionSelectByTicket(ulong ticket) {
  for (size_t i = 0; i < g_sim.positions.size(); i++)
    if ((ulong)g_sim.positions[i].ticket == ticket) { g_sim.selected = (long)i; return true; }
  g_sim.selected = -1;
  return false;
}
inline bool PositionSelect(const string &sym) {
  for (size_t i = 0; i < g_sim.positions.size(); i++)
    if (g_sim.positions[i].symbol == sym) { g_sim.selected = (long)i; return true; }
  g_sim.selected = -1;
  return false;
}
inline const mqlcompat::SimPosition *mql_selected() {
  if (g_sim.selected < 0 || g_sim.selected >= (long)g_sim.positions.size()) return nullptr;
  return &g_sim.positions[(size_t)g_sim.selected];
}
inline double PositionGetDouble(ENUM_POSITION_PROPERTY_DOUBLE p) {
  auto *s = mql_selected();
  if (!s) return 0;
  switch (p) {
    case POSITION_VOLUME: return s->volume;
    case POSITION_PRICE_OPEN: return s->price_open;
    case POSITION_SL: return s->sl;
    case POSITION_TP: return s->tp;
  }
  return 0;
}
inline long PositionGetInteger(ENUM_POSITION_PROPERTY_INTEGER p) {
  auto *s = mql_selected();
  if (!s) return 0;
  switch (p) {
    case POSITION_TICKET: return s->ticket;
    case POSITION_TYPE: return s->type;
    case POSITION_MAGIC: return s->magic;
    case POSITION_TIME: return s->time;
  }
  return 0;
}
inline string PositionGetString(ENUM_POSITION_PROPERTY_STRING p) {
  auto *s = mql_selected();
  if (!s) return string("");
  return p == POSITION_SYMBOL ? s->symbol : string("");
}

// ---------------------------------------------------------------- trading
enum ENUM_TRADE_REQUEST_ACTIONS { TRADE_ACTION_DEAL = 1, TRADE_ACTION_PENDING = 5, TRADE_ACTION_SLTP = 6, TRADE_ACTION_MODIFY = 7, TRADE_ACTION_REMOVE = 8, TRADE_ACTION_CLOSE_BY = 10 };
enum ENUM_ORDER_TYPE { ORDER_TYPE_BUY = 0, ORDER_TYPE_SELL = 1 };
enum ENUM_ORDER_TYPE_FILLING { ORDER_FILLING_FOK = 0, ORDER_FILLING_IOC = 1, ORDER_FILLING_RETURN = 2 };
enum ENUM_ORDER_TYPE_TIME { ORDER_TIME_GTC = 0 };
#define TRADE_RETCODE_REQUOTE 10004
#define TRADE_RETCODE_REJECT 10006
#define TRADE_RETCODE_CANCEL 10007
#define TRADE_RETCODE_PLACED 10008
#define TRADE_RETCODE_DONE 10009
#define TRADE_RETCODE_DONE_PARTIAL 10010
#define TRADE_RETCODE_ERROR 10011
#define TRADE_RETCODE_TIMEOUT 10012
#define TRADE_RETCODE_INVALID 10013
#define TRADE_RETCODE_INVALID_VOLUME 10014
#define TRADE_RETCODE_INVALID_PRICE 10015
#define TRADE_RETCODE_INVALID_STOPS 10016
#define TRADE_RETCODE_TRADE_DISABLED 10017
#define TRADE_RETCODE_MARKET_CLOSED 10018
#define TRADE_RETCODE_NO_MONEY 10019
#define TRADE_RETCODE_PRICE_CHANGED 10020
#define TRADE_RETCODE_PRICE_OFF 10021
#define TRADE_RETCODE_TOO_MANY_REQUESTS 10024
#define TRADE_RETCODE_CONNECTION 10031
#define TRADE_RETCODE_INVALID_FILL 10030
#define TRADE_RETCODE_LIMIT_VOLUME 10034
#define TRADE_RETCODE_POSITION_CLOSED 10036

struct MqlTradeRequest {
  ENUM_TRADE_REQUEST_ACTIONS action;
  ulong magic, order;
  string symbol;
  double volume, price, stoplimit, sl, tp;
  ulong deviation;
  ENUM_ORDER_TYPE type;
  ENUM_ORDER_TYPE_FILLING type_filling;
  ENUM_ORDER_TYPE_TIME type_time;
  datetime expiration;
  string comment;
  ulong position, position_by;
};
struct MqlTradeResult {
  uint retcode;
  ulong deal, order;
  double volume, price, bid, ask;
  string comment;
  uint request_id;
  int retcode_external;
};

namespace mqlcompat {
inline bool volume_ok(double v) {
  if (v < g_sim.vol_min - 1e-9 || v > g_sim.vol_max + 1e-9) return false;
  double steps = v / g_sim.vol_step;
  return std::fabs(steps - std::round(steps)) < 1e-6;
}
// Prices must be whole multiples of the tick size (0 = no stop).
inline bool on_tick_grid(double price) {
  if (price == 0.0 || g_sim.tick_size <= 0) return true;
  double ticks = price / g_sim.tick_size;
  return std::fabs(ticks - std::round(ticks)) < 1e-6;
}
// A buy's stops are checked against the bid it would close at, a sell's against the ask, at the stops level.
inline bool stops_ok(int type, double sl, double tp) {
  double gap = (double)g_sim.stops_level * g_sim.point;
  if (type == ORDER_TYPE_BUY) {
    if (sl > 0 && sl > g_sim.bid - gap) return false;
    if (tp > 0 && tp < g_sim.bid + gap) return false;
  } else {
    if (sl > 0 && sl < g_sim.ask + gap) return false;
    if (tp > 0 && tp > g_sim.ask - gap) return false;
  }
  return true;
}
}  // namespace mqlcompat

// The simulated trade server: checks what a real one checks (volume limits and step, stops level, filling mode,
// margin), executes at the current bid/ask, nets or hedges positions. Scripted return codes test the EA's handling.
inline bool OrderSend(const MqlTradeRequest &r, MqlTradeResult &res) {
  using namespace mqlcompat;
  res = MqlTradeResult();
  g_sim.order_sends++;
  auto fail = [&](uint code) { res.retcode = code; mql_last_error() = 4756; return false; };
  if (!g_sim.forced_retcodes.empty()) {
    uint code = g_sim.forced_retcodes.front();
    g_sim.forced_retcodes.pop_front();
    if (code != 0) {
      if (code == TRADE_RETCODE_REQUOTE || code == TRADE_RETCODE_PRICE_CHANGED) { res.bid = g_sim.bid; res.ask = g_sim.ask; }
      return fail(code);
    }
  }
  if (r.action != TRADE_ACTION_DEAL) return fail(TRADE_RETCODE_INVALID);
  if (!(r.symbol == g_sim.symbol)) return fail(TRADE_RETCODE_INVALID);
  if (!g_sim.trade_allowed || g_sim.trade_mode == SYMBOL_TRADE_MODE_DISABLED) return fail(TRADE_RETCODE_TRADE_DISABLED);
  if (!volume_ok(r.volume)) return fail(TRADE_RETCODE_INVALID_VOLUME);
  if (r.type != ORDER_TYPE_BUY && r.type != ORDER_TYPE_SELL) return fail(TRADE_RETCODE_INVALID);
  if (!SimInSession(g_sim.server_now)) return fail(TRADE_RETCODE_MARKET_CLOSED);
  // Filling, as the execution mode decides: request and instant execution fill whatever is asked; market execution
  // takes FOK or IOC when the symbol's flags allow it and never RETURN; exchange execution also takes RETURN.
  int allowed = (int)g_sim.filling;
  if (g_sim.exemode == SYMBOL_TRADE_EXECUTION_MARKET || g_sim.exemode == SYMBOL_TRADE_EXECUTION_EXCHANGE) {
    if ((r.type_filling == ORDER_FILLING_FOK && !(allowed & SYMBOL_FILLING_FOK)) ||
        (r.type_filling == ORDER_FILLING_IOC && !(allowed & SYMBOL_FILLING_IOC)) ||
        (r.type_filling == ORDER_FILLING_RETURN && g_sim.exemode == SYMBOL_TRADE_EXECUTION_MARKET))
      return fail(TRADE_RETCODE_INVALID_FILL);
  }
  double price = r.type == ORDER_TYPE_BUY ? g_sim.ask : g_sim.bid;
  if (r.price > 0 && std::fabs(r.price - price) > (double)r.deviation * g_sim.point + 1e-12) {
    res.bid = g_sim.bid; res.ask = g_sim.ask;
    return fail(TRADE_RETCODE_REQUOTE);
  }
  int ptype = r.type == ORDER_TYPE_BUY ? POSITION_TYPE_BUY : POSITION_TYPE_SELL;
  // Which position does the deal act on? Hedging: the named one (or a new one). Netting: the symbol's one.
  long idx = -1;
  for (size_t i = 0; i < g_sim.positions.size(); i++) {
    auto &p = g_sim.positions[i];
    if (g_sim.hedging ? (r.position != 0 && (ulong)p.ticket == r.position) : (p.symbol == r.symbol)) idx = (long)i;
  }
  if (g_sim.hedging && r.position != 0 && idx < 0) return fail(TRADE_RETCODE_POSITION_CLOSED);
  bool opening = idx < 0 || g_sim.positions[(size_t)idx].type == ptype;
  if (opening) {
    if (!on_tick_grid(r.sl) || !on_tick_grid(r.tp) || !stops_ok(r.type, r.sl, r.tp)) return fail(TRADE_RETCODE_INVALID_STOPS);
    if (AccountInfoDouble(ACCOUNT_MARGIN_FREE) < r.volume * g_sim.margin_per_lot) return fail(TRADE_RETCODE_NO_MONEY);
  }
  long ticket = g_sim.next_ticket++;
  g_sim.deals.push_back(SimDeal{ticket, (int)r.type, r.volume, price, r.sl, r.tp, (long)r.position, (long)r.magic, g_sim.time, r.comment});
  if (idx < 0) {
    g_sim.positions.push_back(SimPosition{ticket, r.symbol, (long)r.magic, ptype, r.volume, price, r.sl, r.tp, g_sim.time});
  } else {
    auto &p = g_sim.positions[(size_t)idx];
    if (p.type == ptype) {
      p.price_open = (p.price_open * p.volume + price * r.volume) / (p.volume + r.volume);
      p.volume += r.volume;
      if (r.sl > 0) p.sl = r.sl;
      if (r.tp > 0) p.tp = r.tp;
    } else if (r.volume < p.volume - 1e-9) {
      p.volume = std::round((p.volume - r.volume) * 1e8) / 1e8;
    } else {
      double rest = std::round((r.volume - p.volume) * 1e8) / 1e8;
      g_sim.positions.erase(g_sim.positions.begin() + idx);
      if (rest > 1e-9) {
        if (g_sim.hedging) return fail(TRADE_RETCODE_INVALID_VOLUME);
        g_sim.positions.push_back(SimPosition{ticket, r.symbol, (long)r.magic, ptype, rest, price, r.sl, r.tp, g_sim.time});
      }
    }
  }
  g_sim.selected = -1;
  res.retcode = TRADE_RETCODE_DONE;
  res.deal = (ulong)ticket;
  res.order = (ulong)ticket;
  res.volume = r.volume;
  res.price = price;
  res.bid = g_sim.bid;
  res.ask = g_sim.ask;
  return true;
}

// The trade server's side of stops: close every position whose stop-loss or take-profit the bar reached. Longs close
// at the bid (the bar's prices minus half the spread), shorts at the ask; when both are reached in one bar the stop is
// taken, as the backtester assumes (the order inside a bar is unknown).
inline int SimApplyStops(const mqlcompat::SimBar &bar, double half_spread) {
  int closed = 0;
  for (size_t i = 0; i < g_sim.positions.size();) {
    auto &p = g_sim.positions[i];
    bool lng = p.type == POSITION_TYPE_BUY;
    double adverse = lng ? bar.low - half_spread : bar.high + half_spread;
    double favour = lng ? bar.high - half_spread : bar.low + half_spread;
    bool sl = p.sl > 0 && (lng ? adverse <= p.sl : adverse >= p.sl);
    bool tp = !sl && p.tp > 0 && (lng ? favour >= p.tp : favour <= p.tp);
    if (sl || tp) {
      g_sim.deals.push_back(mqlcompat::SimDeal{g_sim.next_ticket++, lng ? ORDER_TYPE_SELL : ORDER_TYPE_BUY, p.volume,
                                               sl ? p.sl : p.tp, 0, 0, p.ticket, p.magic, bar.time, sl ? "sl" : "tp"});
      g_sim.positions.erase(g_sim.positions.begin() + (long)i);
      closed++;
    } else {
      i++;
    }
  }
  return closed;
}

// ---------------------------------------------------------------- bars
enum ENUM_TIMEFRAMES { PERIOD_CURRENT = 0, PERIOD_M1 = 1, PERIOD_M5 = 5, PERIOD_M15 = 15, PERIOD_M30 = 30, PERIOD_H1 = 16385, PERIOD_H4 = 16388, PERIOD_D1 = 16408 };
inline int PeriodSeconds(ENUM_TIMEFRAMES tf = PERIOD_CURRENT) {
  switch (tf) {
    case PERIOD_M1: return 60; case PERIOD_M5: return 300; case PERIOD_M15: return 900; case PERIOD_M30: return 1800;
    case PERIOD_H4: return 14400; case PERIOD_D1: return 86400; default: return 3600;
  }
}
inline ENUM_TIMEFRAMES Period() { return PERIOD_H1; }
#define _Period (Period())
struct MqlRates { datetime time; double open, high, low, close; long tick_volume; int spread; long real_volume; };
// Bars of the simulated chart up to and including the current one; start_pos 0 is the current bar.
inline int CopyRates(const string &sym, ENUM_TIMEFRAMES, int start_pos, int count, MqlArray<MqlRates> &out) {
  if (!mql_known_symbol(sym)) return -1;
  long last = g_sim.bar_index - start_pos;
  long first = std::max(0L, last - count + 1);
  if (last < 0 || g_sim.bars.empty()) { mql_last_error() = 4401; return -1; }
  out.v.clear();
  for (long i = first; i <= last; i++) {
    auto &b = g_sim.bars[(size_t)i];
    out.v.push_back(MqlRates{b.time, b.open, b.high, b.low, b.close, b.tick_volume, b.spread, 0});
  }
  return (int)out.v.size();
}
// Bars whose open time lies in [from, to], oldest first (the date-range form of CopyRates).
inline int CopyRates(const string &sym, ENUM_TIMEFRAMES, datetime from, datetime to, MqlArray<MqlRates> &out) {
  if (!mql_known_symbol(sym)) return -1;
  out.v.clear();
  for (auto &b : g_sim.bars)
    if (b.time >= from && b.time <= to) out.v.push_back(MqlRates{b.time, b.open, b.high, b.low, b.close, b.tick_volume, b.spread, 0});
  if (out.v.empty()) mql_last_error() = 4401;
  return out.v.empty() ? -1 : (int)out.v.size();
}
inline int Bars(const string &sym, ENUM_TIMEFRAMES) { return mql_known_symbol(sym) ? (int)(g_sim.bar_index + 1) : 0; }
inline datetime iTime(const string &sym, ENUM_TIMEFRAMES, int shift) {
  long i = g_sim.bar_index - shift;
  if (!mql_known_symbol(sym) || i < 0 || i >= (long)g_sim.bars.size()) return 0;
  return g_sim.bars[(size_t)i].time;
}
inline string EnumToString(ENUM_TIMEFRAMES tf) {
  switch (tf) {
    case PERIOD_M1: return "PERIOD_M1"; case PERIOD_M5: return "PERIOD_M5"; case PERIOD_M15: return "PERIOD_M15";
    case PERIOD_M30: return "PERIOD_M30"; case PERIOD_H1: return "PERIOD_H1"; case PERIOD_H4: return "PERIOD_H4";
    case PERIOD_D1: return "PERIOD_D1"; default: return "PERIOD_CURRENT";
  }
}

// ---------------------------------------------------------------- files (kept in g_sim.files, name -> content)
#define FILE_READ 1
#define FILE_WRITE 2
#define FILE_CSV 8
#define FILE_TXT 16
#define FILE_ANSI 32
#define FILE_UNICODE 64
#define FILE_COMMON 4096
namespace mqlcompat {
struct OpenFile { std::string name; std::string buf; bool open; ushort delim; bool csv; };
inline std::vector<OpenFile> &open_files() { static std::vector<OpenFile> f; return f; }
}  // namespace mqlcompat
inline int FileOpen(const string &name, int flags, ushort delim = '\t', uint codepage = CP_ACP) {
  (void)codepage;
  if (!(flags & FILE_WRITE)) { mql_last_error() = 5004; return INVALID_HANDLE; }
  mqlcompat::open_files().push_back(mqlcompat::OpenFile{name.s, "", true, delim, (flags & FILE_CSV) != 0});
  return (int)mqlcompat::open_files().size() - 1;
}
template <class... A> uint FileWrite(int h, const A &...a) {
  if (h < 0 || h >= (int)mqlcompat::open_files().size()) return 0;
  auto &f = mqlcompat::open_files()[(size_t)h];
  std::vector<std::string> parts{mqlcompat::to_text(a)...};
  std::string line;
  for (size_t i = 0; i < parts.size(); i++) { if (i) line += (char)f.delim; line += parts[i]; }
  line += "\r\n";  // MQL5's FileWrite ends lines with CRLF
  f.buf += line;
  return (uint)line.size();
}
inline uint FileWriteString(int h, const string &s, int = -1) {
  if (h < 0 || h >= (int)mqlcompat::open_files().size()) return 0;
  mqlcompat::open_files()[(size_t)h].buf += s.s;
  return (uint)s.s.size();
}
inline void FileClose(int h) {
  if (h < 0 || h >= (int)mqlcompat::open_files().size()) return;
  auto &f = mqlcompat::open_files()[(size_t)h];
  if (f.open) g_sim.files[f.name] = f.buf;
  f.open = false;
}

// ---------------------------------------------------------------- economic calendar (for the export script)
enum ENUM_CALENDAR_EVENT_IMPORTANCE { CALENDAR_IMPORTANCE_NONE = 0, CALENDAR_IMPORTANCE_LOW = 1, CALENDAR_IMPORTANCE_MODERATE = 2, CALENDAR_IMPORTANCE_HIGH = 3 };
enum ENUM_CALENDAR_EVENT_UNIT {
  CALENDAR_UNIT_NONE, CALENDAR_UNIT_PERCENT, CALENDAR_UNIT_CURRENCY, CALENDAR_UNIT_HOUR, CALENDAR_UNIT_JOB, CALENDAR_UNIT_RIG,
  CALENDAR_UNIT_USD, CALENDAR_UNIT_PEOPLE, CALENDAR_UNIT_MORTGAGE, CALENDAR_UNIT_VOTE, CALENDAR_UNIT_BARREL,
  CALENDAR_UNIT_CUBICFEET, CALENDAR_UNIT_POSITION, CALENDAR_UNIT_BUILDING
};
enum ENUM_CALENDAR_EVENT_MULTIPLIER { CALENDAR_MULTIPLIER_NONE, CALENDAR_MULTIPLIER_THOUSANDS, CALENDAR_MULTIPLIER_MILLIONS, CALENDAR_MULTIPLIER_BILLIONS, CALENDAR_MULTIPLIER_TRILLIONS };
inline string EnumToString(ENUM_CALENDAR_EVENT_UNIT u) {
  static const char *names[] = {"CALENDAR_UNIT_NONE", "CALENDAR_UNIT_PERCENT", "CALENDAR_UNIT_CURRENCY", "CALENDAR_UNIT_HOUR",
                                "CALENDAR_UNIT_JOB", "CALENDAR_UNIT_RIG", "CALENDAR_UNIT_USD", "CALENDAR_UNIT_PEOPLE",
                                "CALENDAR_UNIT_MORTGAGE", "CALENDAR_UNIT_VOTE", "CALENDAR_UNIT_BARREL", "CALENDAR_UNIT_CUBICFEET",
                                "CALENDAR_UNIT_POSITION", "CALENDAR_UNIT_BUILDING"};
  return names[(int)u];
}
inline string EnumToString(ENUM_CALENDAR_EVENT_MULTIPLIER m) {
  static const char *names[] = {"CALENDAR_MULTIPLIER_NONE", "CALENDAR_MULTIPLIER_THOUSANDS", "CALENDAR_MULTIPLIER_MILLIONS",
                                "CALENDAR_MULTIPLIER_BILLIONS", "CALENDAR_MULTIPLIER_TRILLIONS"};
  return names[(int)m];
}
// Values are stored x 1e6 with LONG_MIN for "none", as MQL5 does; the Get...Value() methods divide.
struct MqlCalendarValue {
  ulong id, event_id;
  datetime time, period;
  int revision;
  long actual_value, prev_value, revised_prev_value, forecast_value;
  int impact_type;
  bool HasActualValue() const { return actual_value != LONG_MIN; }
  bool HasForecastValue() const { return forecast_value != LONG_MIN; }
  bool HasPreviousValue() const { return prev_value != LONG_MIN; }
  bool HasRevisedValue() const { return revised_prev_value != LONG_MIN; }
  double GetActualValue() const { return HasActualValue() ? (double)actual_value / 1e6 : std::nan(""); }
  double GetForecastValue() const { return HasForecastValue() ? (double)forecast_value / 1e6 : std::nan(""); }
  double GetPreviousValue() const { return HasPreviousValue() ? (double)prev_value / 1e6 : std::nan(""); }
  double GetRevisedValue() const { return HasRevisedValue() ? (double)revised_prev_value / 1e6 : std::nan(""); }
};
struct MqlCalendarEvent {
  ulong id; int type, sector, frequency, time_mode; ulong country_id;
  ENUM_CALENDAR_EVENT_UNIT unit; int importance; ENUM_CALENDAR_EVENT_MULTIPLIER multiplier; uint digits;
  string source_url, event_code, name;
};
struct MqlCalendarCountry { ulong id; string name, code, currency, currency_symbol, url_name; };
// The simulated calendar database; tests fill it.
struct SimCalendar {
  std::vector<MqlCalendarValue> values;
  std::vector<MqlCalendarEvent> events;
  std::vector<MqlCalendarCountry> countries;
  std::vector<size_t> changes;  // index into values of each addition or change, in order: the change ids
};
inline SimCalendar &g_calendar() { static SimCalendar c; return c; }
inline int CalendarValueHistory(MqlArray<MqlCalendarValue> &out, datetime from, datetime to = 0, const string &country = string(""), const string &currency = string("")) {
  (void)country; (void)currency;  // the export script filters itself
  if (g_sim.tester) { mql_last_error() = ERR_FUNCTION_NOT_ALLOWED; return -1; }  // as in the Strategy Tester
  out.v.clear();
  for (auto &v : g_calendar().values)
    if (v.time >= from && (to == 0 || v.time <= to)) out.v.push_back(v);
  return (int)out.v.size();
}
// Values added or changed since `change_id` (here: a position in the simulated change log), each once. As in MQL5,
// a first call with 0 only records where the calendar stands and returns nothing; a value whose actual figure is
// published or revised comes back again with its id, as the terminal's does.
inline int CalendarValueLast(ulong &change_id, MqlArray<MqlCalendarValue> &out, const string &country = string(""), const string &currency = string("")) {
  (void)country; (void)currency;
  if (g_sim.tester) { mql_last_error() = ERR_FUNCTION_NOT_ALLOWED; return -1; }
  out.v.clear();
  auto &cal = g_calendar();
  if (change_id != 0) {
    std::vector<size_t> seen;
    for (size_t i = (size_t)change_id - 1; i < cal.changes.size(); i++) {
      size_t k = cal.changes[i];
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
      seen.push_back(k);
      out.v.push_back(cal.values[k]);
    }
  }
  change_id = (ulong)cal.changes.size() + 1;  // never 0 once initialised
  return (int)out.v.size();
}
// Test helpers: a value enters the calendar, or an existing one changes (its revision counts up).
inline void SimCalendarAdd(const MqlCalendarValue &v) {
  g_calendar().values.push_back(v);
  g_calendar().changes.push_back(g_calendar().values.size() - 1);
}
inline void SimCalendarChange(size_t index, const MqlCalendarValue &v) {
  auto &cal = g_calendar();
  int revision = cal.values[index].revision + 1;
  cal.values[index] = v;
  cal.values[index].revision = revision;
  cal.changes.push_back(index);
}
inline bool CalendarEventById(ulong id, MqlCalendarEvent &e) {
  for (auto &x : g_calendar().events)
    if (x.id == id) { e = x; return true; }
  return false;
}
// MQL5 declares the country id `long` although MqlCalendarEvent::country_id is `ulong`: the caller must cast.
inline bool CalendarCountryById(long id, MqlCalendarCountry &k) {
  for (auto &x : g_calendar().countries)
    if ((long)x.id == id) { k = x; return true; }
  return false;
}
