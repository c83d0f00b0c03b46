//+------------------------------------------------------------------+
//|                                                   Trader.mqh     |
//|  Reconciles the EA's position to the server's target             |
//+------------------------------------------------------------------+
//| A target is not an order: the trader compares it with what the EA |
//| holds (its magic number, its symbol) and trades only the          |
//| difference. Already there: nothing happens, however often the    |
//| same target arrives. Opposite: close, then open. Flat: close.     |
//| A target already acted on is not acted on again: after a stop or  |
//| take-profit the EA stays flat until the target changes, as the    |
//| backtester's engine does (otherwise it would re-enter at once).   |
//| Opening obeys the risk rules (lot size from risk per trade and    |
//| stop distance within the symbol's volume limits and step, max     |
//| spread, allowed hours) and always carries a stop-loss; closing    |
//| reduces risk, so only the trade server can refuse it.             |
//|                                                                   |
//| The "already acted" mark is kept in a terminal global variable,   |
//| so a restart of the terminal or the EA does not re-enter a target |
//| that was stopped out. On a netting account a symbol has one       |
//| position whatever the magic: the trader refuses to trade a symbol |
//| holding someone else's position rather than merge into it.        |
//| Filling and stops follow MetaQuotes' CTrade / CSymbolInfo: the    |
//| filling policy by execution mode, prices on the tick-size grid,   |
//| stops-level distances measured from the price the server checks.  |
//+------------------------------------------------------------------+
#ifndef EABRIDGE_TRADER_MQH
#define EABRIDGE_TRADER_MQH

#define BRIDGE_NOT_ACTED                2
#define BRIDGE_MARKET_CLOSED_BACKOFF_S  60    // no new orders this long after MARKET_CLOSED / TRADE_DISABLED
#define BRIDGE_MAX_FILLINGS             3

enum ENUM_RECONCILE
  {
   RECONCILE_NONE=0,         // already at the target
   RECONCILE_OPENED=1,
   RECONCILE_CLOSED=2,
   RECONCILE_REVERSED=3,
   RECONCILE_SKIPPED=4,      // a risk rule said no (reason in LastMessage)
   RECONCILE_FAILED=5        // the trade server refused (retcode in LastRetcode)
  };

struct TraderSettings
  {
   string            symbol;
   long              magic;
   double            risk_percent;       // of equity lost if the stop is hit
   double            max_lots;           // 0 = only the symbol's maximum
   int               max_spread_points;  // 0 = no limit
   int               hour_from;          // server-time hours [from, to) in which positions may be opened
   int               hour_to;
   int               deviation_points;
   double            fallback_sl;        // stop distance (price units) when the target has none; 0 = refuse
   int               max_attempts;       // per order, for requotes and invalid stops
  };

class CBridgeTrader
  {
private:
   TraderSettings    m_set;
   uint              m_last_retcode;
   string            m_last_message;
   datetime          m_closed_until;     // after MARKET_CLOSED, do not hammer the server
   datetime          m_now;              // the clock of the current Reconcile: one clock for setting and checking
   int               m_acted;            // the direction last brought about; BRIDGE_NOT_ACTED before the first

   //--- the terminal global variable that keeps m_acted across restarts, per symbol and magic number
   string            ActedName(void) const
     {
      return("EABridge."+m_set.symbol+"."+IntegerToString(m_set.magic)+".acted");
     }
   void              SetActed(const int direction)
     {
      if(direction==m_acted)
         return;
      m_acted=direction;
      if(GlobalVariableSet(ActedName(),(double)direction)==0)
         Print(__FUNCTION__,": cannot keep the acted-on target in global variable ",ActedName(),", error ",
               IntegerToString(GetLastError()));
     }
   bool              Netting(void) const
     {
      return(AccountInfoInteger(ACCOUNT_MARGIN_MODE)!=ACCOUNT_MARGIN_MODE_RETAIL_HEDGING);
     }
   //--- on netting accounts: the magic number of a position in the symbol that is not ours, else 0 with false
   bool              ForeignPosition(long &magic) const
     {
      for(int i=PositionsTotal()-1;i>=0;i--)
        {
         ulong ticket=PositionGetTicket(i);
         if(ticket==0 || PositionGetString(POSITION_SYMBOL)!=m_set.symbol)
            continue;
         if(PositionGetInteger(POSITION_MAGIC)!=m_set.magic)
           {
            magic=PositionGetInteger(POSITION_MAGIC);
            return(true);
           }
        }
      magic=0;
      return(false);
     }
   //--- inside one of the symbol's trade sessions at `now` (server time)? A symbol that lists none trades always.
   bool              InSession(const datetime now) const
     {
      MqlDateTime t;
      TimeToStruct(now,t);
      long second=(long)t.hour*3600+t.min*60+t.sec;
      bool any=false;
      for(int day=0;day<7;day++)
        {
         datetime from=0,to=0;
         for(uint k=0;SymbolInfoSessionTrade(m_set.symbol,(ENUM_DAY_OF_WEEK)day,k,from,to);k++)
           {
            any=true;
            if(day!=t.day_of_week)
               continue;
            long a=(long)from%86400,b=(long)to;
            if(b>86400)
               b=86400;
            if(second>=a && second<b)
               return(true);
           }
        }
      return(!any);
     }
   //--- a price on the symbol's tick grid, as CSymbolInfo::NormalizePrice does
   double            NormalizePrice(const double price) const
     {
      double tick=SymbolInfoDouble(m_set.symbol,SYMBOL_TRADE_TICK_SIZE);
      int digits=(int)SymbolInfoInteger(m_set.symbol,SYMBOL_DIGITS);
      if(tick<=0.0)
         return(NormalizeDouble(price,digits));
      return(NormalizeDouble(MathRound(price/tick)*tick,digits));
     }
   //--- the filling policies to try, in order, as CTrade's FillingCheck picks them by execution mode; on retcode
   //--- 10030 (unsupported filling) the next one is tried
   int               Fillings(ENUM_ORDER_TYPE_FILLING &fillings[]) const
     {
      long exemode=SymbolInfoInteger(m_set.symbol,SYMBOL_TRADE_EXEMODE);
      long modes=SymbolInfoInteger(m_set.symbol,SYMBOL_FILLING_MODE);
      ArrayResize(fillings,0);
      int n=0;
      if(exemode==SYMBOL_TRADE_EXECUTION_REQUEST || exemode==SYMBOL_TRADE_EXECUTION_INSTANT)
        {
         //--- the terminal fills these in itself; any policy is accepted
         ArrayResize(fillings,1);
         fillings[0]=ORDER_FILLING_FOK;
         return(1);
        }
      ArrayResize(fillings,BRIDGE_MAX_FILLINGS);
      if((modes&SYMBOL_FILLING_FOK)!=0)
         fillings[n++]=ORDER_FILLING_FOK;
      if((modes&SYMBOL_FILLING_IOC)!=0)
         fillings[n++]=ORDER_FILLING_IOC;
      if(exemode==SYMBOL_TRADE_EXECUTION_EXCHANGE)
         fillings[n++]=ORDER_FILLING_RETURN;   // exchange execution always takes RETURN
      else if(n==0)
        {
         //--- market execution never takes RETURN; a symbol that reports no flag gets both tried
         fillings[n++]=ORDER_FILLING_FOK;
         fillings[n++]=ORDER_FILLING_IOC;
        }
      ArrayResize(fillings,n);
      return(n);
     }

   bool              Refresh(double &bid,double &ask)
     {
      MqlTick tick;
      if(!SymbolInfoTick(m_set.symbol,tick) || tick.bid<=0.0 || tick.ask<=0.0)
        {
         m_last_message="no prices for "+m_set.symbol;
         return(false);
        }
      bid=tick.bid;
      ask=tick.ask;
      return(true);
     }
   //--- an opening order's stops: at sl_dist / tp_dist from the entry price, but at least the stops level (plus a
   //--- point) from the price the server checks them against (a buy's against the bid, a sell's against the ask)
   void              Stops(const ENUM_ORDER_TYPE type,const double price,const double bid,const double ask,
                           const double sl_dist,const double tp_dist,double &sl,double &tp) const
     {
      double point=SymbolInfoDouble(m_set.symbol,SYMBOL_POINT);
      double gap=(double)SymbolInfoInteger(m_set.symbol,SYMBOL_TRADE_STOPS_LEVEL)*point+point;
      if(type==ORDER_TYPE_BUY)
        {
         sl=NormalizePrice(MathMin(price-sl_dist,bid-gap));
         tp=(tp_dist>0.0 ? NormalizePrice(MathMax(price+tp_dist,bid+gap)) : 0.0);
        }
      else
        {
         sl=NormalizePrice(MathMax(price+sl_dist,ask+gap));
         tp=(tp_dist>0.0 ? NormalizePrice(MathMin(price-tp_dist,ask-gap)) : 0.0);
        }
     }
   //--- one market deal, with the trade server's return codes handled; true when it executed. An opening order
   //--- (position 0) is sized here, from the stop it finally carries, so widening a stop never raises the risk
   bool              Deal(const ENUM_ORDER_TYPE type,double volume,const ulong position,double sl_dist,
                          const double tp_dist,const string comment)
     {
      int digits=(int)SymbolInfoInteger(m_set.symbol,SYMBOL_DIGITS);
      double point=SymbolInfoDouble(m_set.symbol,SYMBOL_POINT);
      ENUM_ORDER_TYPE_FILLING fillings[];
      int fills=Fillings(fillings);
      int fill=0;
      for(int attempt=1;attempt<=m_set.max_attempts;attempt++)
        {
         double bid=0.0,ask=0.0;
         if(!Refresh(bid,ask))
            return(false);
         MqlTradeRequest request={};
         MqlTradeResult  result={};
         request.action=TRADE_ACTION_DEAL;
         request.symbol=m_set.symbol;
         request.type=type;
         request.price=(type==ORDER_TYPE_BUY ? ask : bid);
         request.deviation=(ulong)m_set.deviation_points;
         request.magic=(ulong)m_set.magic;
         request.type_filling=fillings[fill];
         request.position=position;
         request.comment=comment;
         if(position==0)
           {
            Stops(type,request.price,bid,ask,sl_dist,tp_dist,request.sl,request.tp);
            volume=LotSize(MathAbs(request.price-request.sl));
            if(volume<=0.0)
              {
               m_last_message=StringFormat("risk %s%% with a stop of %s is below the minimum volume",
                                           DoubleToString(m_set.risk_percent,2),
                                           DoubleToString(MathAbs(request.price-request.sl),digits));
               return(false);
              }
           }
         request.volume=volume;
         ResetLastError();
         bool sent=OrderSend(request,result);
         m_last_retcode=result.retcode;
         if(sent && (result.retcode==TRADE_RETCODE_DONE || result.retcode==TRADE_RETCODE_DONE_PARTIAL ||
                     result.retcode==TRADE_RETCODE_PLACED))
           {
            m_last_message=StringFormat("%s %s %s lots at %s",(position==0 ? "opened" : "closed"),
                                        (type==ORDER_TYPE_BUY ? "buy" : "sell"),DoubleToString(volume,2),
                                        DoubleToString(result.price,digits));
            return(true);
           }
         //--- prices moved: take the new ones and try again
         if(result.retcode==TRADE_RETCODE_REQUOTE || result.retcode==TRADE_RETCODE_PRICE_CHANGED ||
            result.retcode==TRADE_RETCODE_PRICE_OFF)
           {
            m_last_message=StringFormat("requote (%d), attempt %d",(int)result.retcode,attempt);
            continue;
           }
         //--- the filling policy is not accepted for this symbol: the next one, as CTrade's FillingCheck would pick
         if(result.retcode==TRADE_RETCODE_INVALID_FILL)
           {
            if(fill+1<fills)
              {
               fill++;
               m_last_message=StringFormat("filling mode %d not supported (10030), trying %d",
                                           (int)request.type_filling,(int)fillings[fill]);
               continue;
              }
            m_last_message=StringFormat("%s accepts none of its filling modes (flags %d, execution mode %d)",
                                        m_set.symbol,(int)SymbolInfoInteger(m_set.symbol,SYMBOL_FILLING_MODE),
                                        (int)SymbolInfoInteger(m_set.symbol,SYMBOL_TRADE_EXEMODE));
            return(false);
           }
         //--- stops too close for the server right now (stops level moved, fast market): widen and retry; the
         //--- volume is sized again from the wider stop on the next attempt
         if(result.retcode==TRADE_RETCODE_INVALID_STOPS && position==0)
           {
            double spread=ask-bid;
            sl_dist=MathAbs(request.price-request.sl)+spread+
                    (double)SymbolInfoInteger(m_set.symbol,SYMBOL_TRADE_FREEZE_LEVEL)*point+10*point;
            m_last_message=StringFormat("invalid stops, widening the stop to %s",DoubleToString(sl_dist,digits));
            continue;
           }
         if(result.retcode==TRADE_RETCODE_MARKET_CLOSED || result.retcode==TRADE_RETCODE_TRADE_DISABLED)
           {
            m_closed_until=m_now+BRIDGE_MARKET_CLOSED_BACKOFF_S;
            m_last_message=StringFormat("market closed: no trading for %d s",BRIDGE_MARKET_CLOSED_BACKOFF_S);
            return(false);
           }
         if(result.retcode==TRADE_RETCODE_NO_MONEY)
           {
            m_last_message=StringFormat("not enough money for %s lots",DoubleToString(volume,2));
            return(false);
           }
         m_last_message=StringFormat("trade server refused: retcode %d, error %d",(int)result.retcode,GetLastError());
         return(false);
        }
      m_last_message=m_last_message+"; gave up after "+IntegerToString(m_set.max_attempts)+" attempts";
      return(false);
     }
   bool              OpenAllowed(const datetime now)
     {
      if(now<m_closed_until)
        {
         m_last_message="market closed a moment ago; waiting";
         return(false);
        }
      if(!InSession(now))
        {
         m_last_message="market closed: outside "+m_set.symbol+"'s trading sessions";
         return(false);
        }
      if(m_set.max_spread_points>0)
        {
         long spread=SymbolInfoInteger(m_set.symbol,SYMBOL_SPREAD);
         if(spread>m_set.max_spread_points)
           {
            m_last_message=StringFormat("spread %d points exceeds the maximum %d",(int)spread,m_set.max_spread_points);
            return(false);
           }
        }
      MqlDateTime t;
      TimeToStruct(now,t);
      bool inside=(m_set.hour_from<=m_set.hour_to) ? (t.hour>=m_set.hour_from && t.hour<m_set.hour_to)
                  : (t.hour>=m_set.hour_from || t.hour<m_set.hour_to);   // a window across midnight, e.g. 22..6
      if(!inside)
        {
         m_last_message=StringFormat("hour %d is outside the trading hours %d..%d",t.hour,m_set.hour_from,m_set.hour_to);
         return(false);
        }
      return(true);
     }

public:
                     CBridgeTrader(void) : m_last_retcode(0),m_closed_until(0),m_now(0),m_acted(BRIDGE_NOT_ACTED) {}
   void              Init(const TraderSettings &settings)
     {
      m_set=settings;
      m_last_retcode=0;
      m_last_message="";
      m_closed_until=0;
      m_now=0;
      m_acted=BRIDGE_NOT_ACTED;
      //--- what this EA last acted on survives a restart of the terminal (or of the EA) in a global variable
      if(GlobalVariableCheck(ActedName()))
        {
         int acted=(int)GlobalVariableGet(ActedName());
         if(acted>=-1 && acted<=1)
            m_acted=acted;
        }
     }
   //--- true when this account nets positions and the symbol holds one that is not this EA's (reason in LastMessage)
   bool              Blocked(void)
     {
      long magic=0;
      if(!Netting() || !ForeignPosition(magic))
         return(false);
      m_last_message=StringFormat("netting account: %s holds a position with magic %s (manual or another EA); "
                                  "not trading this symbol until it is closed",m_set.symbol,IntegerToString(magic));
      return(true);
     }
   //--- what the EA holds: the net direction and volume of its positions in the symbol
   void              Position(int &direction,double &volume) const
     {
      double net=0.0;
      for(int i=PositionsTotal()-1;i>=0;i--)
        {
         ulong ticket=PositionGetTicket(i);
         if(ticket==0 || PositionGetString(POSITION_SYMBOL)!=m_set.symbol ||
            PositionGetInteger(POSITION_MAGIC)!=m_set.magic)
            continue;
         double v=PositionGetDouble(POSITION_VOLUME);
         net+=(PositionGetInteger(POSITION_TYPE)==POSITION_TYPE_BUY ? v : -v);
        }
      net=NormalizeDouble(net,8);
      direction=(net>0.0 ? 1 : (net<0.0 ? -1 : 0));
      volume=MathAbs(net);
     }
   //+------------------------------------------------------------------+
   //| Lot size: lose risk_percent of equity if the stop at sl_dist is  |
   //| hit; rounded down to the volume step, capped at the maxima. 0    |
   //| when even the minimum volume would risk more than allowed.       |
   //+------------------------------------------------------------------+
   double            LotSize(const double sl_dist) const
     {
      double tick_size =SymbolInfoDouble(m_set.symbol,SYMBOL_TRADE_TICK_SIZE);
      double tick_value=SymbolInfoDouble(m_set.symbol,SYMBOL_TRADE_TICK_VALUE);
      double vmin=SymbolInfoDouble(m_set.symbol,SYMBOL_VOLUME_MIN);
      double vmax=SymbolInfoDouble(m_set.symbol,SYMBOL_VOLUME_MAX);
      double step=SymbolInfoDouble(m_set.symbol,SYMBOL_VOLUME_STEP);
      if(sl_dist<=0.0 || tick_size<=0.0 || tick_value<=0.0 || step<=0.0)
         return(0.0);
      double risk_money=AccountInfoDouble(ACCOUNT_EQUITY)*m_set.risk_percent/100.0;
      double loss_per_lot=sl_dist/tick_size*tick_value;
      double volume=risk_money/loss_per_lot;
      if(m_set.max_lots>0.0)
         volume=MathMin(volume,m_set.max_lots);
      volume=MathMin(volume,vmax);
      //--- down to the step (the small epsilon keeps 0.3/0.1 = 2.9999999 from losing a step)
      volume=MathFloor(volume/step+1e-7)*step;
      int step_digits=0;
      while(step_digits<8 && MathAbs(step*MathPow(10,step_digits)-MathRound(step*MathPow(10,step_digits)))>1e-9)
         step_digits++;
      volume=NormalizeDouble(volume,step_digits);
      if(volume<vmin)
         return(0.0);
      return(volume);
     }
   //+------------------------------------------------------------------+
   //| Bring the position to `direction` (-1, 0, +1). sl_dist/tp_dist   |
   //| are price distances from the target; `now` is server time.       |
   //+------------------------------------------------------------------+
   ENUM_RECONCILE    Reconcile(const int direction,const double sl_dist,const double tp_dist,const datetime now)
     {
      m_last_message="";
      m_now=now;
      if(direction!=-1 && direction!=0 && direction!=1)
        {
         m_last_message="invalid target direction "+IntegerToString(direction);
         return(RECONCILE_SKIPPED);
        }
      //--- netting: one position per symbol whatever the magic; ours would merge into someone else's
      if(Blocked())
         return(RECONCILE_SKIPPED);
      int held=0;
      double held_volume=0.0;
      Position(held,held_volume);
      if(held==direction)
        {
         SetActed(direction);
         m_last_message="at target";
         return(RECONCILE_NONE);
        }
      if(direction==m_acted)
        {
         m_last_message="target already acted on; its position was closed by a stop, take-profit or by hand";
         return(RECONCILE_NONE);
        }
      bool closed=false;
      if(held!=0)
        {
         //--- close every position of ours in the symbol (one on netting accounts, maybe several on hedging)
         for(int i=PositionsTotal()-1;i>=0;i--)
           {
            ulong ticket=PositionGetTicket(i);
            if(ticket==0 || PositionGetString(POSITION_SYMBOL)!=m_set.symbol ||
               PositionGetInteger(POSITION_MAGIC)!=m_set.magic)
               continue;
            double v=PositionGetDouble(POSITION_VOLUME);
            ENUM_ORDER_TYPE type=(PositionGetInteger(POSITION_TYPE)==POSITION_TYPE_BUY ? ORDER_TYPE_SELL : ORDER_TYPE_BUY);
            if(!Deal(type,v,ticket,0.0,0.0,"EABridge close"))
               return(RECONCILE_FAILED);
           }
         closed=true;
        }
      if(direction==0)
        {
         SetActed(0);
         return(RECONCILE_CLOSED);
        }
      if(!OpenAllowed(now))
         return(closed ? RECONCILE_CLOSED : RECONCILE_SKIPPED);
      double sl=(sl_dist>0.0 ? sl_dist : m_set.fallback_sl);
      if(sl<=0.0)
        {
         m_last_message="target has no stop-loss and no fallback stop is set: not opening";
         return(closed ? RECONCILE_CLOSED : RECONCILE_SKIPPED);
        }
      double volume=LotSize(sl);
      if(volume<=0.0)
        {
         m_last_message=StringFormat("risk %s%% with a stop of %s is below the minimum volume",
                                     DoubleToString(m_set.risk_percent,2),DoubleToString(sl,6));
         return(closed ? RECONCILE_CLOSED : RECONCILE_SKIPPED);
        }
      if(!Deal(direction>0 ? ORDER_TYPE_BUY : ORDER_TYPE_SELL,volume,0,sl,tp_dist,"EABridge"))
         return(RECONCILE_FAILED);   // flat now if a reversal's close went through; the next target retries
      SetActed(direction);
      return(closed ? RECONCILE_REVERSED : RECONCILE_OPENED);
     }
   uint              LastRetcode(void) const { return(m_last_retcode); }
   string            LastMessage(void) const { return(m_last_message); }
  };
#endif
//+------------------------------------------------------------------+
