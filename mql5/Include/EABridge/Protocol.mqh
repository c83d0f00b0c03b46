//+------------------------------------------------------------------+
//|                                                  Protocol.mqh    |
//|  The wire contract's constants, as bridge/wire/protocol.py has   |
//|  them                                                             |
//+------------------------------------------------------------------+
//| One place for what the EA shares with the server and the Python   |
//| client: the protocol version, limits, message types, error codes, |
//| the Lazy Pirate timeouts and the reconnect back-off. A test       |
//| (tests/test_protocol_mqh.py) reads this file and compares every   |
//| value with bridge/wire/protocol.py, so the two cannot drift.      |
//+------------------------------------------------------------------+
#ifndef EABRIDGE_PROTOCOL_MQH
#define EABRIDGE_PROTOCOL_MQH

//--- version and limits (PROTOCOL_VERSION, MAX_MESSAGE_BYTES, MAX_ID_CHARS, MAX_BARS)
#define BRIDGE_PROTOCOL_VERSION   1
#define BRIDGE_MAX_MESSAGE_BYTES  65536      // UTF-8 bytes of one frame, not characters
#define BRIDGE_MAX_ID_CHARS       64
#define BRIDGE_MAX_BARS           500

//--- Lazy Pirate client (REQUEST_TIMEOUT_MS, REQUEST_RETRIES, RECONNECT_BACKOFF_MS)
#define BRIDGE_REQUEST_TIMEOUT_MS 2500
#define BRIDGE_REQUEST_RETRIES    3
#define BRIDGE_BACKOFF_1_MS       500        // after the 1st failed request
#define BRIDGE_BACKOFF_2_MS       1000
#define BRIDGE_BACKOFF_3_MS       2000
#define BRIDGE_BACKOFF_MAX_MS     5000       // after the 4th and every later one

//--- request types (HELLO, SIGNAL, NEWS, PING, STATS)
#define BRIDGE_TYPE_HELLO         "hello"
#define BRIDGE_TYPE_SIGNAL        "signal"
#define BRIDGE_TYPE_NEWS          "news"
#define BRIDGE_TYPE_PING          "ping"
#define BRIDGE_TYPE_STATS         "stats"
//--- reply types (TARGET, ACK, PONG, ERROR)
#define BRIDGE_TYPE_TARGET        "target"
#define BRIDGE_TYPE_ACK           "ack"
#define BRIDGE_TYPE_PONG          "pong"
#define BRIDGE_TYPE_ERROR         "error"

//--- error codes of `error` replies (E_*)
#define BRIDGE_E_MULTIPART        "multipart"
#define BRIDGE_E_TOO_LARGE        "too_large"
#define BRIDGE_E_BAD_UTF8         "bad_utf8"
#define BRIDGE_E_BAD_JSON         "bad_json"
#define BRIDGE_E_NOT_OBJECT       "not_object"
#define BRIDGE_E_BAD_VERSION      "bad_version"
#define BRIDGE_E_UNKNOWN_TYPE     "unknown_type"
#define BRIDGE_E_MISSING_FIELD    "missing_field"
#define BRIDGE_E_BAD_FIELD        "bad_field"
#define BRIDGE_E_RATE_LIMITED     "rate_limited"
#define BRIDGE_E_BUSY             "busy"          // analysis backlog full: send the news again later
#define BRIDGE_E_STORAGE          "storage"       // server journal not writable: news not accepted
#define BRIDGE_E_INTERNAL         "internal"

#endif
//+------------------------------------------------------------------+
