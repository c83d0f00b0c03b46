//+------------------------------------------------------------------+
//|                                                   EABridge.mq5   |
//|  Trades the target positions an EA Bridge server computes from   |
//|  the news. All strategy lives in the server; the EA collects     |
//|  state, asks, and reconciles its position with risk rules.       |
//+------------------------------------------------------------------+
#property copyright "EA Bridge"
#property version   "1.00"
#property description "Asks an EA Bridge server (ZeroMQ, libzmq.dll) for a target position and trades to it."
#property description "Needs 'Allow DLL imports'. In the Strategy Tester it sends the simulated time (server replay mode)."
//--- the tester copies these to its local agents (remote and cloud agents refuse DLLs); libzmq's official x64 builds
//--- need only Windows' own DLLs and the Visual C++ runtime, which the terminal already has
#property tester_library "libzmq.dll"

#include <EABridge/Protocol.mqh>
#include <EABridge/Json.mqh>
#include <EABridge/Client.mqh>
#include <EABridge/Trader.mqh>

#define BRIDGE_CALENDAR_POLL_MS 1000   // how often new calendar values are looked for (live, InpForwardCalendar)
#define BRIDGE_FORWARDED_IDS    256    // calendar values remembered as forwarded, so a revision is not sent again

//--- connection
input string   InpEndpoint          = "tcp://127.0.0.1:5555"; // Server endpoint (ZeroMQ)
input int      InpTimeoutMs         = 2500;    // Reply timeout per attempt, ms
input int      InpRetries           = 3;       // Attempts before the server counts as unreachable
input string   InpServerKey         = "";      // CURVE: server public key (Z85, 40 chars; empty = no encryption)
input string   InpClientPublicKey   = "";      // CURVE: this client's public key
input string   InpClientSecretKey   = "";      // CURVE: this client's secret key
//--- when to ask
input ENUM_TIMEFRAMES InpTimeframe  = PERIOD_H1; // Ask at every new bar of this timeframe
input int      InpSignalSeconds     = 60;      // Also ask this often live, seconds (0 = only on new bars)
input int      InpSendBars          = 0;       // Recent closed bars sent with each request (0..500)
input int      InpTesterUtcOffsetHours = 2;    // Strategy Tester only: the broker's server time minus UTC, hours
input int      InpTesterLatencySeconds = 5;    // Strategy Tester only: ask as of this long before the tick (backtest.run --latency)
//--- risk
input double   InpRiskPercent       = 1.0;     // Risk per trade, % of equity lost at the stop
input double   InpMaxLots           = 1.0;     // Largest position, lots (0 = symbol maximum)
input int      InpMaxSpreadPoints   = 30;      // Do not open above this spread, points (0 = no limit)
input int      InpHourFrom          = 0;       // Open positions from this server hour (0..23)
input int      InpHourTo            = 24;      // ... until this server hour (1..24; below From = across midnight)
input double   InpFallbackStop      = 0.0;     // Stop distance (price) when the target has none (0 = do not open)
input int      InpDeviationPoints   = 10;      // Maximum slippage, points
input long     InpMagic             = 20260101;// Magic number of this EA's positions
//--- news
input bool     InpForwardCalendar   = false;   // Live: forward released MT5 calendar values of the symbol's currencies

//+------------------------------------------------------------------+
//| The EA: state, the request cycle, and the chart status line       |
//+------------------------------------------------------------------+
class CEABridge
  {
private:
   CBridgeClient     m_client;
   CBridgeTrader     m_trader;
   bool              m_tester;
   long              m_seq;
   string            m_pending_id;
   datetime          m_last_bar;
   ulong             m_next_ask_ms;
   //--- last outcome, for the status line
   int               m_target;
   double            m_strength;
   string            m_last;
   long              m_targets;
   long              m_rejected;
   //--- calendar forwarding (live only): values waiting to be sent as news requests
   ulong             m_calendar_change;
   ulong             m_next_calendar_ms;
   string            m_news_queue[];
   bool              m_pending_news;   // the request in flight is a news request, not a signal
   long              m_forwarded;
   ulong             m_forwarded_ids[];   // calendar value ids already queued (newest last, at most BRIDGE_FORWARDED_IDS)

   //--- everything that belongs to one run of the EA. The terminal keeps globals (ExtBridge) across a re-init:
   //--- new inputs, chart symbol or timeframe run OnDeinit and OnInit again without the constructor
   void              ResetRun(void)
     {
      m_pending_id="";
      m_pending_news=false;
      m_last_bar=0;
      m_next_ask_ms=0;
      m_target=0;
      m_strength=0.0;
      m_last="";
      m_calendar_change=0;
      m_next_calendar_ms=0;
      ArrayResize(m_news_queue,0);
      ArrayResize(m_forwarded_ids,0);
     }
   bool              AlreadyForwarded(const ulong id) const
     {
      for(int i=ArraySize(m_forwarded_ids)-1;i>=0;i--)
         if(m_forwarded_ids[i]==id)
            return(true);
      return(false);
     }
   void              RememberForwarded(const ulong id)
     {
      int n=ArraySize(m_forwarded_ids);
      if(n>=BRIDGE_FORWARDED_IDS)
        {
         for(int i=1;i<n;i++)
            m_forwarded_ids[i-1]=m_forwarded_ids[i];
         n--;
        }
      ArrayResize(m_forwarded_ids,n+1);
      m_forwarded_ids[n]=id;
     }

   long              UtcOffset(void) const
     {
      if(m_tester)
         return((long)InpTesterUtcOffsetHours*3600);   // TimeGMT() equals server time in the tester
      //--- rounded to a quarter hour: the two clocks are read a moment apart
      long raw=(long)(TimeTradeServer()-TimeGMT());
      return((long)MathRound((double)raw/900.0)*900);
     }
   //--- a new bar not yet asked about, or (live) the periodic ask; a bar stays due until a request for it went out,
   //--- so after a back-off the EA asks at once instead of waiting for the next bar
   bool              Due(void)
     {
      datetime bar=iTime(_Symbol,InpTimeframe,0);
      if(bar!=0 && bar!=m_last_bar)
         return(true);
      if(!m_tester && InpSignalSeconds>0 && GetTickCount64()>=m_next_ask_ms)
         return(true);
      return(false);
     }
   bool              Ask(void)
     {
      int held=0;
      double held_volume=0.0;
      m_trader.Position(held,held_volume);
      MqlRates bars[];
      int count=0;
      if(InpSendBars>0)
        {
         count=CopyRates(_Symbol,InpTimeframe,1,InpSendBars,bars);   // closed bars only, oldest first
         if(count<0)
            count=0;
        }
      m_seq++;
      m_pending_id=_Symbol+"-"+IntegerToString(m_seq);
      string request;
      //--- the tester's first tick of a bar comes at the bar's open: asking as of a latency earlier means news
      //--- published right at the open move the next bar, exactly as backtest.run's --latency does
      datetime now=(m_tester ? TimeCurrent()-InpTesterLatencySeconds : TimeTradeServer());
      //--- the symbol's currencies as the terminal knows them: the server need not guess them from the name
      string base=SymbolInfoString(_Symbol,SYMBOL_CURRENCY_BASE);
      string quote=SymbolInfoString(_Symbol,SYMBOL_CURRENCY_PROFIT);
      if(!BridgeSignalRequest(m_pending_id,_Symbol,now,UtcOffset(),held,held_volume,bars,count,_Digits,m_tester,request,
                              base,quote))
        {
         m_last="could not encode the request";
         return(false);
        }
      if(!m_client.Start(request))
         return(false);
      m_next_ask_ms=GetTickCount64()+(ulong)InpSignalSeconds*1000;
      m_last_bar=iTime(_Symbol,InpTimeframe,0);
      return(true);
     }
   void              Handle(const string text)
     {
      BridgeReply reply;
      string error;
      if(!BridgeDecodeReply(text,reply,error))
        {
         //--- a malformed reply is not a target: hold what we have, ask again next time
         m_rejected++;
         m_last="bad reply ignored: "+error;
         Print(__FUNCTION__,": ",m_last);
         return;
        }
      if(reply.id!=m_pending_id)
        {
         m_rejected++;
         m_last="reply for '"+reply.id+"' ignored, expected '"+m_pending_id+"'";
         Print(__FUNCTION__,": ",m_last);
         return;
        }
      if(reply.type==BRIDGE_TYPE_ERROR)
        {
         m_rejected++;
         m_last="server error "+reply.code+": "+reply.message;
         Print(__FUNCTION__,": ",m_last);
         //--- throttled: this bar has no target yet, so it stays due and is asked about again on the next event
         if(reply.code==BRIDGE_E_RATE_LIMITED)
            m_last_bar=0;
         return;
        }
      if(reply.type!=BRIDGE_TYPE_TARGET || reply.symbol!=_Symbol)
        {
         m_rejected++;
         m_last="unexpected "+reply.type+" reply for '"+reply.symbol+"'";
         Print(__FUNCTION__,": ",m_last);
         return;
        }
      m_targets++;
      m_target=reply.direction;
      m_strength=reply.strength;
      datetime now=(m_tester ? TimeCurrent() : TimeTradeServer());
      ENUM_RECONCILE r=m_trader.Reconcile(reply.direction,reply.sl,reply.tp,now);
      if(r!=RECONCILE_NONE)
        {
         m_last=m_trader.LastMessage();
         Print(__FUNCTION__,": target ",IntegerToString(reply.direction),": ",m_last);
        }
     }
   //+------------------------------------------------------------------+
   //| New released calendar values of the symbol's two currencies      |
   //| become queued `news` requests (values scaled as the calendar     |
   //| shows them, e.g. 336 for 336K; the server's surprise rule reads   |
   //| actual against forecast).                                         |
   //+------------------------------------------------------------------+
   void              PollCalendar(void)
     {
      if(!InpForwardCalendar || m_tester || GetTickCount64()<m_next_calendar_ms)
         return;
      m_next_calendar_ms=GetTickCount64()+BRIDGE_CALENDAR_POLL_MS;
      MqlCalendarValue values[];
      int n=CalendarValueLast(m_calendar_change,values,NULL,NULL);
      string base=SymbolInfoString(_Symbol,SYMBOL_CURRENCY_BASE);
      string quote=SymbolInfoString(_Symbol,SYMBOL_CURRENCY_PROFIT);
      for(int i=0;i<n;i++)
        {
         MqlCalendarEvent event;
         MqlCalendarCountry country;
         //--- CalendarValueLast also returns values that changed: a release forwarded before and now revised is
         //--- not news again (the server would count the same surprise twice)
         if(!values[i].HasActualValue() || AlreadyForwarded(values[i].id) || !CalendarEventById(values[i].event_id,event) ||
            !CalendarCountryById((long)event.country_id,country))
            continue;
         if(country.currency!=base && country.currency!=quote)
            continue;
         string impact="none";
         if(event.importance==CALENDAR_IMPORTANCE_HIGH)
            impact="high";
         else if(event.importance==CALENDAR_IMPORTANCE_MODERATE)
            impact="medium";
         else if(event.importance==CALENDAR_IMPORTANCE_LOW)
            impact="low";
         string request;
         m_seq++;
         if(BridgeNewsRequest("cal-"+IntegerToString(m_seq),country.currency+" "+event.name,values[i].time,UtcOffset(),
                              "mt5-calendar",country.currency,event.name,impact,values[i].GetActualValue(),
                              (values[i].HasForecastValue() ? values[i].GetForecastValue() : NotANumber()),
                              (values[i].HasPreviousValue() ? values[i].GetPreviousValue() : NotANumber()),request))
           {
            int size=ArraySize(m_news_queue);
            ArrayResize(m_news_queue,size+1);
            m_news_queue[size]=request;
            RememberForwarded(values[i].id);
           }
        }
     }
   //--- NaN: the value a calendar field has when it is not set (sent as null)
   double            NotANumber(void) const { return(MathSqrt(-1.0)); }
   bool              SendNews(void)
     {
      if(ArraySize(m_news_queue)==0)
         return(false);
      if(!m_client.Start(m_news_queue[0]))
         return(false);
      m_pending_news=true;
      return(true);
     }
   void              HandleNews(const string text)
     {
      BridgeReply reply;
      string error;
      //--- whatever the answer, this item is done: a server error would repeat for the same item
      int size=ArraySize(m_news_queue);
      for(int i=1;i<size;i++)
         m_news_queue[i-1]=m_news_queue[i];
      ArrayResize(m_news_queue,MathMax(0,size-1));
      if(!BridgeDecodeReply(text,reply,error) || reply.type!=BRIDGE_TYPE_ACK)
        {
         m_last="calendar value not accepted: "+(error!="" ? error : reply.code+" "+reply.message);
         Print(__FUNCTION__,": ",m_last);
         return;
        }
      m_forwarded++;
      m_last="calendar value forwarded";
     }
   void              Status(void)
     {
      int held=0;
      double volume=0.0;
      m_trader.Position(held,volume);
      string link=(m_client.Reachable() ? StringFormat("server ok %.1f ms",(double)m_client.LastRttMicros()/1000.0)
                   : "SERVER UNREACHABLE, no new trades");
      Comment(StringFormat("EABridge %s | %s | target %d (%.2f) | held %d %s lots | %s",
                           _Symbol,link,m_target,m_strength,held,DoubleToString(volume,2),m_last));
     }

public:
                     CEABridge(void) : m_tester(false),m_seq(0),m_last_bar(0),m_next_ask_ms(0),m_target(0),
                     m_strength(0.0),m_targets(0),m_rejected(0),m_calendar_change(0),m_next_calendar_ms(0),
                     m_pending_news(false),m_forwarded(0) {}
   int               Init(void)
     {
      ResetRun();
      string problem=CheckInputs();
      if(problem!="")
        {
         Print(__FUNCTION__,": ",problem);
         Alert("EABridge: ",problem);
         return(INIT_PARAMETERS_INCORRECT);
        }
      if(!MQLInfoInteger(MQL_DLLS_ALLOWED))
        {
         Print(__FUNCTION__,": DLL imports are not allowed; tick 'Allow DLL imports' in the EA's properties (Common tab)");
         return(INIT_FAILED);
        }
      m_tester=(MQLInfoInteger(MQL_TESTER)!=0);
      if(!m_tester && AccountInfoInteger(ACCOUNT_MARGIN_MODE)!=ACCOUNT_MARGIN_MODE_RETAIL_HEDGING)
         Print(__FUNCTION__,": netting account: one position per symbol, so ",_Symbol,
               " is not traded while it holds a manual or another EA's position");
      TraderSettings settings;
      settings.symbol=_Symbol;
      settings.magic=InpMagic;
      settings.risk_percent=InpRiskPercent;
      settings.max_lots=InpMaxLots;
      settings.max_spread_points=InpMaxSpreadPoints;
      settings.hour_from=InpHourFrom;
      settings.hour_to=InpHourTo;
      settings.deviation_points=InpDeviationPoints;
      settings.fallback_sl=InpFallbackStop;
      settings.max_attempts=3;
      m_trader.Init(settings);
      m_client.Init(InpEndpoint,InpTimeoutMs,InpRetries,InpServerKey,InpClientPublicKey,InpClientSecretKey);
      Print(__FUNCTION__,": libzmq ",ZmqVersion(),", server ",InpEndpoint,(m_tester ? ", Strategy Tester" : ""));
      //--- live: a short timer so replies are picked up without waiting for ticks
      if(!m_tester && !EventSetMillisecondTimer(100))
        {
         Print(__FUNCTION__,": cannot start the timer, error ",IntegerToString(GetLastError()));
         return(INIT_FAILED);
        }
      //--- the first call only records where the calendar stands: no backlog is forwarded
      if(InpForwardCalendar && !m_tester)
        {
         MqlCalendarValue values[];
         CalendarValueLast(m_calendar_change,values,NULL,NULL);
        }
      m_last="started";
      Status();
      return(INIT_SUCCEEDED);
     }
   //--- empty when the inputs are usable, else what is wrong and how to fix it
   string            CheckInputs(void) const
     {
      if(StringFind(InpEndpoint,"tcp://")!=0 && StringFind(InpEndpoint,"ipc://")!=0)
         return("InpEndpoint must look like tcp://127.0.0.1:5555, got '"+InpEndpoint+"'");
      if(InpTimeoutMs<100 || InpTimeoutMs>60000)
         return("InpTimeoutMs must be 100..60000 ms, got "+IntegerToString(InpTimeoutMs));
      if(InpRetries<1 || InpRetries>10)
         return("InpRetries must be 1..10, got "+IntegerToString(InpRetries));
      bool any_key=(InpServerKey!="" || InpClientPublicKey!="" || InpClientSecretKey!="");
      if(any_key && (StringLen(InpServerKey)!=40 || StringLen(InpClientPublicKey)!=40 || StringLen(InpClientSecretKey)!=40))
         return("CURVE needs all three keys, 40 Z85 characters each (python -m bridge.keys makes them); leave all empty for none");
      if(InpSignalSeconds<0)
         return("InpSignalSeconds must be >= 0, got "+IntegerToString(InpSignalSeconds));
      if(InpSendBars<0 || InpSendBars>BRIDGE_MAX_BARS)
         return("InpSendBars must be 0.."+IntegerToString(BRIDGE_MAX_BARS)+", got "+IntegerToString(InpSendBars));
      if(InpTesterUtcOffsetHours<-14 || InpTesterUtcOffsetHours>14)
         return("InpTesterUtcOffsetHours must be -14..14, got "+IntegerToString(InpTesterUtcOffsetHours));
      if(InpTesterLatencySeconds<0 || InpTesterLatencySeconds>3600)
         return("InpTesterLatencySeconds must be 0..3600, got "+IntegerToString(InpTesterLatencySeconds));
      if(!(InpRiskPercent>0.0) || InpRiskPercent>10.0)
         return("InpRiskPercent must be above 0 and at most 10, got "+DoubleToString(InpRiskPercent,2));
      if(InpMaxLots<0.0)
         return("InpMaxLots must be >= 0, got "+DoubleToString(InpMaxLots,2));
      if(InpMaxSpreadPoints<0)
         return("InpMaxSpreadPoints must be >= 0, got "+IntegerToString(InpMaxSpreadPoints));
      if(InpHourFrom<0 || InpHourFrom>23 || InpHourTo<1 || InpHourTo>24 || InpHourFrom==InpHourTo)
         return(StringFormat("trading hours must satisfy 0 <= InpHourFrom <= 23, 1 <= InpHourTo <= 24 and differ; got %d..%d",
                             InpHourFrom,InpHourTo));
      if(InpFallbackStop<0.0)
         return("InpFallbackStop must be >= 0");
      if(InpDeviationPoints<0)
         return("InpDeviationPoints must be >= 0");
      if(InpMagic<=0)
         return("InpMagic must be a positive number");
      double vmin=SymbolInfoDouble(_Symbol,SYMBOL_VOLUME_MIN);
      if(InpMaxLots>0.0 && InpMaxLots<vmin)
         return(StringFormat("InpMaxLots %s is below %s's minimum volume %s",DoubleToString(InpMaxLots,2),_Symbol,
                             DoubleToString(vmin,2)));
      return("");
     }
   void              Deinit(const int reason)
     {
      EventKillTimer();
      m_client.Shutdown();
      ResetRun();   // a re-init starts clean: no news reply expected, no old symbol's queue
      Comment("");
      Print(__FUNCTION__,": stopped (reason ",IntegerToString(reason),"), ",IntegerToString(m_targets)," targets, ",
            IntegerToString(m_rejected)," replies rejected, ",IntegerToString(m_client.Timeouts())," timeouts");
     }
   //--- one cycle: collect a reply if one is in flight, else ask when due
   void              Step(void)
     {
      if(m_client.Pending())
        {
         //--- live: a short look, the next timer event looks again; tester: wait, simulated time stands still
         ENUM_BRIDGE_POLL state=m_client.Poll(m_tester ? InpTimeoutMs : 5);
         while(m_tester && state==BRIDGE_PENDING)
            state=m_client.Poll(InpTimeoutMs);
         bool news=m_pending_news;
         if(state!=BRIDGE_PENDING)
            m_pending_news=false;
         if(state==BRIDGE_REPLY)
           {
            if(news)
               HandleNews(m_client.Reply());
            else
               Handle(m_client.Reply());
           }
         else if(state==BRIDGE_FAILED)
           {
            m_last=m_client.LastError();
            Print(__FUNCTION__,": ",m_last,"; no new trades until it answers");
           }
         Status();
         return;
        }
      PollCalendar();
      if(!Due())
        {
         //--- between bars: forward queued calendar values, one request at a time
         if(SendNews())
            Status();
         return;
        }
      if(!Ask())
        {
         m_last=m_client.LastError();
         Status();
         return;
        }
      if(m_tester)
         Step();   // collect the reply now, within this simulated moment
     }
   bool              Reachable(void) const { return(m_client.Reachable()); }
   long              Targets(void)   const { return(m_targets); }
   int               LastTarget(void) const { return(m_target); }
   long              Forwarded(void)  const { return(m_forwarded); }
   long              Rejected(void)  const { return(m_rejected); }
   ulong             LastRttMicros(void) const { return(m_client.LastRttMicros()); }
  };

CEABridge ExtBridge;

//+------------------------------------------------------------------+
int OnInit(void)
  {
   return(ExtBridge.Init());
  }
//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   ExtBridge.Deinit(reason);
  }
//+------------------------------------------------------------------+
void OnTimer(void)
  {
   ExtBridge.Step();
  }
//+------------------------------------------------------------------+
void OnTick(void)
  {
   //--- the tester has no wall-clock timer worth waiting for: ask on the ticks that open a new bar
   if(MQLInfoInteger(MQL_TESTER))
      ExtBridge.Step();
  }
//+------------------------------------------------------------------+
