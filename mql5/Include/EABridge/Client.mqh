//+------------------------------------------------------------------+
//|                                                   Client.mqh     |
//|  The Lazy Pirate request-reply client over Zmq.mqh               |
//+------------------------------------------------------------------+
//| The ZeroMQ Guide's reliable request-reply pattern, as the Python  |
//| client (bridge.client) does it: every receive is preceded by a    |
//| poll with a timeout; a REQ socket that timed out is closed with   |
//| linger 0 and reopened (a REQ socket is stuck once a reply is      |
//| lost); after the last retry the server counts as unreachable and  |
//| new attempts wait out a growing back-off.                         |
//|                                                                   |
//| Nothing here blocks longer than the caller allows: Start() sends  |
//| without waiting and Poll(wait_ms) waits at most wait_ms. Live, the|
//| EA polls a few milliseconds per timer event; in the Strategy      |
//| Tester it waits for the reply, because simulated time must not    |
//| move on while the server answers.                                 |
//+------------------------------------------------------------------+
#ifndef EABRIDGE_CLIENT_MQH
#define EABRIDGE_CLIENT_MQH

#include <EABridge/Zmq.mqh>
#include <EABridge/Protocol.mqh>

#define BRIDGE_MAX_RECV_BYTES     (BRIDGE_MAX_MESSAGE_BYTES+1)   // one byte past the limit, to detect oversize replies

enum ENUM_BRIDGE_POLL
  {
   BRIDGE_IDLE=0,       // nothing in flight
   BRIDGE_PENDING=1,    // request sent, no reply yet
   BRIDGE_REPLY=2,      // a reply arrived (Reply() has it)
   BRIDGE_FAILED=3      // all retries timed out: the server is unreachable
  };

class CBridgeClient
  {
private:
   string            m_endpoint;
   string            m_server_key;     // CURVE: the server's public key (Z85), "" = plain TCP
   string            m_public_key;
   string            m_secret_key;
   int               m_timeout_ms;
   int               m_retries;
   long              m_context;
   long              m_socket;
   //--- the request in flight
   bool              m_pending;
   uchar             m_request[];
   int               m_request_len;
   ulong             m_deadline;       // GetTickCount64() when the current attempt times out
   int               m_retries_left;
   ulong             m_sent_at_us;
   //--- reachability and back-off
   bool              m_reachable;
   int               m_failures;       // consecutive failed requests
   ulong             m_retry_after;    // no new request before this GetTickCount64()
   //--- results
   uchar             m_buffer[];
   string            m_reply;
   ulong             m_last_rtt_us;
   string            m_last_error;
   long              m_sent;
   long              m_received;
   long              m_timeouts;

   bool              Open(void)
     {
      if(m_context==0)
         m_context=zmq_ctx_new();
      if(m_context==0)
        {
         m_last_error="zmq_ctx_new failed, errno "+IntegerToString(zmq_errno());
         return(false);
        }
      m_socket=zmq_socket(m_context,ZMQ_REQ);
      if(m_socket==0)
        {
         m_last_error="zmq_socket failed, errno "+IntegerToString(zmq_errno());
         return(false);
        }
      //--- linger 0: a closed socket drops what it could not send instead of holding the context open
      ZmqSetInt(m_socket,ZMQ_LINGER,0);
      ZmqSetInt(m_socket,ZMQ_SNDTIMEO,0);
      ZmqSetInt(m_socket,ZMQ_RCVTIMEO,0);
      if(m_server_key!="")
        {
         if(!ZmqSetKey(m_socket,ZMQ_CURVE_SERVERKEY,m_server_key) ||
            !ZmqSetKey(m_socket,ZMQ_CURVE_PUBLICKEY,m_public_key) ||
            !ZmqSetKey(m_socket,ZMQ_CURVE_SECRETKEY,m_secret_key))
           {
            m_last_error="CURVE keys rejected (each must be 40 Z85 characters, and libzmq built with CURVE)";
            Close();
            return(false);
           }
        }
      if(!ZmqConnect(m_socket,m_endpoint))
        {
         m_last_error="cannot connect to "+m_endpoint+", errno "+IntegerToString(zmq_errno());
         Close();
         return(false);
        }
      return(true);
     }
   void              Close(void)
     {
      if(m_socket!=0)
         zmq_close(m_socket);
      m_socket=0;
     }
   bool              SendCurrent(void)
     {
      if(m_socket==0 && !Open())
         return(false);
      int rc=zmq_send(m_socket,m_request,(ulong)m_request_len,ZMQ_DONTWAIT);
      if(rc<0)
        {
         //--- a REQ socket queues while connecting, so EAGAIN here means a stuck socket: reopen next attempt
         m_last_error="send failed, errno "+IntegerToString(zmq_errno());
         Close();
         return(false);
        }
      m_sent++;
      m_sent_at_us=GetMicrosecondCount();
      m_deadline=GetTickCount64()+(ulong)m_timeout_ms;
      return(true);
     }
   void              GiveUp(void)
     {
      m_pending=false;
      m_reachable=false;
      m_failures++;
      //--- back-off grows 0.5 s, 1 s, 2 s, then 5 s, as RECONNECT_BACKOFF_MS in bridge/wire/protocol.py
      int backoff=BRIDGE_BACKOFF_MAX_MS;
      if(m_failures==1)
         backoff=BRIDGE_BACKOFF_1_MS;
      else if(m_failures==2)
         backoff=BRIDGE_BACKOFF_2_MS;
      else if(m_failures==3)
         backoff=BRIDGE_BACKOFF_3_MS;
      m_retry_after=GetTickCount64()+(ulong)backoff;
     }

public:
                     CBridgeClient(void) : m_timeout_ms(BRIDGE_REQUEST_TIMEOUT_MS),m_retries(BRIDGE_REQUEST_RETRIES),
                     m_context(0),m_socket(0),m_pending(false),m_request_len(0),m_deadline(0),m_retries_left(0),
                     m_sent_at_us(0),m_reachable(true),m_failures(0),m_retry_after(0),m_last_rtt_us(0),
                     m_sent(0),m_received(0),m_timeouts(0) {}
                    ~CBridgeClient(void) { Shutdown(); }
   //--- settings; nothing is opened until the first request. Also resets what a previous run of the EA left: the
   //--- terminal keeps globals across a re-init (new inputs, symbol or timeframe) without running the constructor
   bool              Init(const string endpoint,const int timeout_ms,const int retries,
                          const string server_key,const string public_key,const string secret_key)
     {
      Shutdown();
      m_request_len=0;
      m_deadline=0;
      m_retries_left=0;
      m_reachable=true;
      m_failures=0;
      m_retry_after=0;
      m_reply="";
      m_last_error="";
      m_endpoint=endpoint;
      m_timeout_ms=timeout_ms;
      m_retries=retries;
      m_server_key=server_key;
      m_public_key=public_key;
      m_secret_key=secret_key;
      ArrayResize(m_buffer,BRIDGE_MAX_RECV_BYTES);
      return(true);
     }
   void              Shutdown(void)
     {
      Close();
      if(m_context!=0)
         zmq_ctx_term(m_context);
      m_context=0;
      m_pending=false;
     }
   //--- send a request unless one is in flight or the back-off has not run out
   bool              Start(const string request)
     {
      if(m_pending)
        {
         m_last_error="a request is already in flight";
         return(false);
        }
      if(GetTickCount64()<m_retry_after)
        {
         m_last_error="server unreachable, backing off";
         return(false);
        }
      m_request_len=StringToCharArray(request,m_request,0,WHOLE_ARRAY,CP_UTF8)-1;   // without the terminating 0
      m_retries_left=m_retries;
      if(!SendCurrent())
        {
         GiveUp();
         return(false);
        }
      m_pending=true;
      return(true);
     }
   //--- wait up to wait_ms for the reply; handles timeouts, reopening and retries
   ENUM_BRIDGE_POLL  Poll(const int wait_ms)
     {
      if(!m_pending)
         return(BRIDGE_IDLE);
      ulong now=GetTickCount64();
      int wait=0;
      if(m_deadline>now)
         wait=(int)MathMin((ulong)wait_ms,m_deadline-now);
      ZmqPollItem items[];
      ArrayResize(items,1);
      items[0].socket=m_socket;
      items[0].fd=0;
      items[0].events=ZMQ_POLLIN;
      items[0].revents=0;
      int rc=zmq_poll(items,1,wait);
      if(rc>0 && (items[0].revents&ZMQ_POLLIN)!=0)
        {
         int n=zmq_recv(m_socket,m_buffer,(ulong)ArraySize(m_buffer),ZMQ_DONTWAIT);
         if(n>=0)
           {
            m_pending=false;
            m_received++;
            m_last_rtt_us=GetMicrosecondCount()-m_sent_at_us;
            if(n>ArraySize(m_buffer))
              {
               //--- zmq_recv truncates and returns the full size: more than the protocol allows
               m_reply="";
               m_last_error="reply of "+IntegerToString(n)+" bytes exceeds the protocol limit";
              }
            else if(n==0)
               m_reply="";   // CharArrayToString documents count -1 or a length, not 0
            else
               m_reply=CharArrayToString(m_buffer,0,n,CP_UTF8);
            m_reachable=true;
            m_failures=0;
            m_retry_after=0;
            return(BRIDGE_REPLY);
           }
        }
      if(GetTickCount64()<m_deadline)
         return(BRIDGE_PENDING);
      //--- timed out: the REQ socket is unusable now; close it, reopen, resend while retries remain
      m_timeouts++;
      Close();
      m_retries_left--;
      if(m_retries_left>0 && SendCurrent())
         return(BRIDGE_PENDING);
      m_last_error="no reply from "+m_endpoint+" after "+IntegerToString(m_retries)+" attempts";
      GiveUp();
      return(BRIDGE_FAILED);
     }
   //--- Start() then Poll() until done: for the Strategy Tester and scripts, where waiting is right
   ENUM_BRIDGE_POLL  Request(const string request,string &reply)
     {
      if(!Start(request))
         return(BRIDGE_FAILED);
      ENUM_BRIDGE_POLL state=BRIDGE_PENDING;
      while(state==BRIDGE_PENDING)
         state=Poll(m_timeout_ms);
      if(state==BRIDGE_REPLY)
         reply=m_reply;
      return(state);
     }
   bool              Pending(void)        const { return(m_pending); }
   bool              Reachable(void)      const { return(m_reachable); }
   string            Reply(void)          const { return(m_reply); }
   string            LastError(void)      const { return(m_last_error); }
   ulong             LastRttMicros(void)  const { return(m_last_rtt_us); }
   long              Sent(void)           const { return(m_sent); }
   long              Received(void)       const { return(m_received); }
   long              Timeouts(void)       const { return(m_timeouts); }
   int               Failures(void)       const { return(m_failures); }
   string            Endpoint(void)       const { return(m_endpoint); }
  };
#endif
//+------------------------------------------------------------------+
