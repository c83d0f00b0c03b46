//+------------------------------------------------------------------+
//|                                                      Zmq.mqh     |
//|  A thin binding of our own over libzmq (no third-party MQL code) |
//+------------------------------------------------------------------+
//| libzmq's C API, declared for MQL5 with #import. Pointers (context,
//| socket) travel as 64-bit `long`; byte buffers as uchar arrays, which
//| MQL5 passes to a DLL as a pointer to their first element.
//| Only what the Lazy Pirate client needs: context, socket, connect,
//| setsockopt (linger, timeouts, CURVE keys), send, recv, poll, close.
//+------------------------------------------------------------------+
#ifndef EABRIDGE_ZMQ_MQH
#define EABRIDGE_ZMQ_MQH

//--- socket types and options (zmq.h, libzmq 4.x)
#define ZMQ_REQ                 3
#define ZMQ_DEALER              5
#define ZMQ_LINGER              17
#define ZMQ_RCVTIMEO            27
#define ZMQ_SNDTIMEO            28
#define ZMQ_IMMEDIATE           39
#define ZMQ_CURVE_SERVER        47
#define ZMQ_CURVE_PUBLICKEY     48
#define ZMQ_CURVE_SECRETKEY     49
#define ZMQ_CURVE_SERVERKEY     50
#define ZMQ_DONTWAIT            1
#define ZMQ_POLLIN              1
#define ZMQ_POLLOUT             2
//--- errno values libzmq reports (EAGAIN is 11 in both MSVC's and glibc's errno.h)
#define ZMQ_EAGAIN              11
#define ZMQ_EINTR               4
#define ZMQ_ETERM               156384765

//+------------------------------------------------------------------+
//| zmq_pollitem_t. On 64-bit Windows its fd is a SOCKET (8 bytes) and|
//| the C struct is 24 bytes; MQL5 packs structures to 1 byte, so the |
//| padding is spelled out. POSIX builds (the Linux test harness)     |
//| define EABRIDGE_POSIX_ABI: there fd is an int and the size is 16. |
//+------------------------------------------------------------------+
struct ZmqPollItem
  {
   long              socket;
#ifdef EABRIDGE_POSIX_ABI
   int               fd;
#else
   long              fd;
#endif
   short             events;
   short             revents;
#ifndef EABRIDGE_POSIX_ABI
   int               reserved;
#endif
  };

#import "libzmq.dll"
long zmq_ctx_new(void);
int  zmq_ctx_term(long context);
long zmq_socket(long context,int type);
int  zmq_close(long socket);
int  zmq_connect(long socket,const uchar &endpoint[]);
int  zmq_setsockopt(long socket,int option,const uchar &value[],ulong size);
int  zmq_send(long socket,const uchar &buffer[],ulong size,int flags);
int  zmq_recv(long socket,uchar &buffer[],ulong size,int flags);
int  zmq_poll(ZmqPollItem &items[],int count,int timeout_ms);
int  zmq_errno(void);
void zmq_version(int &major,int &minor,int &patch);
#import

//+------------------------------------------------------------------+
//| Helpers that keep uchar-array plumbing out of the client          |
//+------------------------------------------------------------------+
//--- an int option (linger, timeouts) as the 4 little-endian bytes libzmq reads
bool ZmqSetInt(const long socket,const int option,const int value)
  {
   uchar bytes[];
   ArrayResize(bytes,4);
   bytes[0]=(uchar)(value&0xFF);
   bytes[1]=(uchar)((value>>8)&0xFF);
   bytes[2]=(uchar)((value>>16)&0xFF);
   bytes[3]=(uchar)((value>>24)&0xFF);
   return(zmq_setsockopt(socket,option,bytes,4)==0);
  }
//--- a CURVE key in its 40-character Z85 text form
bool ZmqSetKey(const long socket,const int option,const string key)
  {
   uchar bytes[];
   int n=StringToCharArray(key,bytes,0,WHOLE_ARRAY,CP_UTF8)-1;
   if(n!=40)
      return(false);
   return(zmq_setsockopt(socket,option,bytes,40)==0);
  }
//--- connect to "tcp://host:port"
bool ZmqConnect(const long socket,const string endpoint)
  {
   uchar bytes[];
   StringToCharArray(endpoint,bytes,0,WHOLE_ARRAY,CP_UTF8);
   return(zmq_connect(socket,bytes)==0);
  }
//--- libzmq's version as "4.3.5"
string ZmqVersion(void)
  {
   int major=0,minor=0,patch=0;
   zmq_version(major,minor,patch);
   return(IntegerToString(major)+"."+IntegerToString(minor)+"."+IntegerToString(patch));
  }
#endif
//+------------------------------------------------------------------+
