//+------------------------------------------------------------------+
//|                                         EABridgeExportBars.mq5   |
//|  Writes a symbol's bars in the layout of MetaTrader's own        |
//|  "Export bars" (tab-separated <DATE> <TIME> <OPEN> ...), which   |
//|  `python -m backtest.run --bars FILE --bars-tz UTC+N` reads.     |
//+------------------------------------------------------------------+
//| Bar times are the broker's server clock. The file name states the |
//| offset from UTC measured at export time (..._UTC+2.csv) and the   |
//| log says which --bars-tz to pass. A broker with daylight saving   |
//| (most use UTC+2 in winter, UTC+3 in summer) needs the zone name   |
//| instead: --bars-tz America/New_York+7.                            |
//+------------------------------------------------------------------+
#property copyright "EA Bridge"
#property version   "1.00"
#property script_show_inputs

input string          InpSymbol    = "";              // Symbol (empty = the chart's)
input ENUM_TIMEFRAMES InpTimeframe = PERIOD_H1;       // Timeframe
input datetime        InpFrom      = D'2017.01.01';   // From (server time)
input datetime        InpTo        = 0;               // To (server time; 0 = now)
input string          InpFileName  = "";              // File in MQL5\Files (empty = SYMBOL_TF_from_to_UTC+N.csv)

//--- "+02:00" style offset of the server clock from UTC, rounded to a quarter hour
string OffsetText(const long seconds,const bool with_colon)
  {
   long s=(seconds<0 ? -seconds : seconds);
   string sign=(seconds<0 ? "-" : "+");
   long hours=s/3600;
   long minutes=(s%3600)/60;
   if(with_colon)
      return(sign+IntegerToString(hours,2,'0')+":"+IntegerToString(minutes,2,'0'));
   return(sign+IntegerToString(hours)+(minutes!=0 ? ":"+IntegerToString(minutes,2,'0') : ""));
  }
//--- the timeframe as MetaTrader names it in its own export files (H1, M15, D1)
string TimeframeName(const ENUM_TIMEFRAMES tf)
  {
   string name=EnumToString(tf);
   StringReplace(name,"PERIOD_","");
   return(name);
  }
//+------------------------------------------------------------------+
void OnStart(void)
  {
   string symbol=(InpSymbol=="" ? _Symbol : InpSymbol);
   datetime to=(InpTo==0 ? TimeCurrent() : InpTo);
   if(InpFrom>=to)
     {
      Print(__FUNCTION__,": InpFrom must be before InpTo");
      return;
     }
   ENUM_TIMEFRAMES tf=(InpTimeframe==PERIOD_CURRENT ? _Period : InpTimeframe);
   MqlRates rates[];
   ResetLastError();
   int n=CopyRates(symbol,tf,InpFrom,to,rates);
   if(n<=0)
     {
      Print(__FUNCTION__,": no bars for ",symbol," ",TimeframeName(tf)," in that range (error ",IntegerToString(GetLastError()),
            "); open the chart and scroll back so the terminal downloads the history");
      return;
     }
   long offset=(long)MathRound((double)(TimeTradeServer()-TimeGMT())/900.0)*900;
   if(MQLInfoInteger(MQL_TESTER))
      Print(__FUNCTION__,": in the Strategy Tester TimeGMT() equals server time; the UTC offset in the name is 0 there");
   string name=InpFileName;
   if(name=="")
      name=StringFormat("%s_%s_%s_%s_UTC%s.csv",symbol,TimeframeName(tf),TimeToString(rates[0].time,TIME_DATE),
                        TimeToString(rates[n-1].time,TIME_DATE),OffsetText(offset,false));
   StringReplace(name,":","");   // "UTC+5:30" is not a Windows file name
   int h=FileOpen(name,FILE_WRITE|FILE_CSV|FILE_ANSI,'\t',CP_UTF8);
   if(h==INVALID_HANDLE)
     {
      Print(__FUNCTION__,": cannot write ",name,", error ",IntegerToString(GetLastError()));
      return;
     }
   int digits=(int)SymbolInfoInteger(symbol,SYMBOL_DIGITS);
   FileWrite(h,"<DATE>","<TIME>","<OPEN>","<HIGH>","<LOW>","<CLOSE>","<TICKVOL>","<VOL>","<SPREAD>");
   for(int i=0;i<n;i++)
      FileWrite(h,TimeToString(rates[i].time,TIME_DATE),TimeToString(rates[i].time,TIME_SECONDS),
                DoubleToString(rates[i].open,digits),DoubleToString(rates[i].high,digits),
                DoubleToString(rates[i].low,digits),DoubleToString(rates[i].close,digits),
                IntegerToString(rates[i].tick_volume),IntegerToString(rates[i].real_volume),IntegerToString(rates[i].spread));
   FileClose(h);
   Print(__FUNCTION__,": wrote ",IntegerToString(n)," bars to MQL5\\Files\\",name,"; server clock UTC",OffsetText(offset,true),
         " now: pass --bars-tz UTC",OffsetText(offset,false)," (or the broker's zone, e.g. America/New_York+7, if it has DST)");
  }
//+------------------------------------------------------------------+
