// Compile-time check of the zmq_pollitem_t layout the EA passes to libzmq.dll on Windows x64: compiled with
// -fsyntax-only by harness_build.py on every build, so a change to Zmq.mqh that breaks it fails the build.
//
// Windows x64 (LLP64): void *socket (8 bytes), SOCKET fd (UINT_PTR, 8 bytes), short events, short revents, padded to
// the 8-byte alignment: 24 bytes, fd at 8, events at 16, revents at 18. MQL5 packs structures to 1 byte, so the padding
// must be spelled out in Zmq.mqh; packing to 1 byte here reproduces what MetaEditor lays out.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "mql5compat.h"
#pragma GCC diagnostic pop
#pragma pack(push, 1)
#include "EABridge/Zmq.mqh"
#pragma pack(pop)
#include <cstddef>

static_assert(sizeof(ZmqPollItem) == 24, "ZmqPollItem: 24 bytes on Windows x64");
static_assert(offsetof(ZmqPollItem, socket) == 0, "socket at 0");
static_assert(offsetof(ZmqPollItem, fd) == 8 && sizeof(ZmqPollItem::fd) == 8, "fd: an 8-byte SOCKET at 8");
static_assert(offsetof(ZmqPollItem, events) == 16, "events at 16");
static_assert(offsetof(ZmqPollItem, revents) == 18, "revents at 18");
