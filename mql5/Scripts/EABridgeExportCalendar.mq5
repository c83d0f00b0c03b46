//+------------------------------------------------------------------+
//|                                     EABridgeExportCalendar.mq5   |
//|  Writes MetaTrader's economic calendar to the CSV that           |
//|  bridge.news reads (format mt5calendar, docs/calendar_csv.md).   |
//+------------------------------------------------------------------+
//| The calendar functions do not run in the Strategy Tester, so run  |
//| this on a live chart, then give the file to the server            |
//| (python -m bridge.serve --replay FILE) and to backtest.run.       |
//| Event times are the broker's server clock; the header states the |
//| offset measured now and, when InpServerTz is set, the zone rule   |
//| (needed for brokers with daylight saving).                        |
//+------------------------------------------------------------------+
#property copyright "EA Bridge"
#property version   "1.00"
#property script_show_inputs

input datetime InpFrom       = D'2024.01.01';              // From (server time)
input datetime InpTo         = 0;                          // To (server time; 0 = now)
input string   InpCurrencies = "";                         // Only these currencies, e.g. USD,EUR (empty = all)
input string   InpServerTz   = "";                         // Broker zone, e.g. America/New_York+7 (empty = offset only)
input string   InpFileName   = "ea-bridge-calendar.csv";   // File in MQL5\Files

//--- one CSV field: quoted when it holds a comma, a quote or a line break
string CsvField(const string text)
  {
   if(StringFind(text,",")<0 && StringFind(text,"\"")<0 && StringFind(text,"\n")<0 && StringFind(text,"\r")<0)
      return(text);
   string quoted=text;
   StringReplace(quoted,"\"","\"\"");
   return("\""+quoted+"\"");
  }
//--- a calendar number as plain decimal text with the event's digits, trailing zeros dropped
string ValueText(const bool has,const double value,const int digits)
  {
   if(!has || !MathIsValidNumber(value))
      return("");
   string s=DoubleToString(value,MathMax(0,MathMin(8,digits)));
   if(StringFind(s,".")>=0)
     {
      int n=StringLen(s);
      while(n>0 && StringGetCharacter(s,n-1)=='0')
         n--;
      if(n>0 && StringGetCharacter(s,n-1)=='.')
         n--;
      s=StringSubstr(s,0,n);
     }
   return(s);
  }
//--- an enum's name without its prefix, lower case: CALENDAR_UNIT_PERCENT -> percent
string EnumWord(const string name,const string prefix)
  {
   string word=name;
   StringReplace(word,prefix,"");
   StringToLower(word);
   return(word);
  }
string Importance(const int importance)
  {
   if(importance==CALENDAR_IMPORTANCE_HIGH)
      return("high");
   if(importance==CALENDAR_IMPORTANCE_MODERATE)
      return("moderate");
   if(importance==CALENDAR_IMPORTANCE_LOW)
      return("low");
   return("none");
  }
string Offset(const long seconds)
  {
   long s=(seconds<0 ? -seconds : seconds);
   return((seconds<0 ? "-" : "+")+IntegerToString(s/3600,2,'0')+":"+IntegerToString((s%3600)/60,2,'0'));
  }
//--- "2024-01-05T08:00:00Z"
string IsoUtc(const datetime t)
  {
   MqlDateTime s;
   TimeToStruct(t,s);
   return(StringFormat("%04d-%02d-%02dT%02d:%02d:%02dZ",s.year,s.mon,s.day,s.hour,s.min,s.sec));
  }
//+------------------------------------------------------------------+
void OnStart(void)
  {
   if(MQLInfoInteger(MQL_TESTER))
     {
      Print(__FUNCTION__,": the calendar functions do not run in the Strategy Tester; run this script on a live chart");
      return;
     }
   datetime to=(InpTo==0 ? TimeTradeServer() : InpTo);
   if(InpFrom>=to)
     {
      Print(__FUNCTION__,": InpFrom must be before InpTo");
      return;
     }
   MqlCalendarValue values[];
   ResetLastError();
   int n=CalendarValueHistory(values,InpFrom,to,NULL,NULL);
   if(n<=0)
     {
      Print(__FUNCTION__,": no calendar values in that range (error ",IntegerToString(GetLastError()),
            "); is the terminal connected, and does the broker provide the calendar?");
      return;
     }
   string wanted=","+InpCurrencies+",";
   StringReplace(wanted," ","");
   StringToUpper(wanted);
   long offset=(long)MathRound((double)(TimeTradeServer()-TimeGMT())/900.0)*900;
   int h=FileOpen(InpFileName,FILE_WRITE|FILE_TXT|FILE_ANSI,'\t',CP_UTF8);
   if(h==INVALID_HANDLE)
     {
      Print(__FUNCTION__,": cannot write ",InpFileName,", error ",IntegerToString(GetLastError()));
      return;
     }
   FileWriteString(h,"# ea-bridge calendar v1\r\n");
   if(InpServerTz!="")
      FileWriteString(h,"# server_tz="+InpServerTz+"\r\n");
   FileWriteString(h,"# server_utc_offset="+Offset(offset)+"; exported_server="+TimeToString(TimeTradeServer(),TIME_DATE|TIME_MINUTES)+
                   "; exported_utc="+IsoUtc(TimeGMT())+"\r\n");
   FileWriteString(h,"time,country,currency,event,importance,actual,forecast,previous,revised_previous,unit,multiplier,event_id,value_id\r\n");
   int written=0,skipped=0;
   for(int i=0;i<n;i++)
     {
      MqlCalendarEvent event;
      MqlCalendarCountry country;
      if(!CalendarEventById(values[i].event_id,event) || !CalendarCountryById((long)event.country_id,country))
        {
         skipped++;
         continue;
        }
      if(InpCurrencies!="" && StringFind(wanted,","+country.currency+",")<0)
         continue;
      string row=TimeToString(values[i].time,TIME_DATE|TIME_MINUTES)+","+CsvField(country.code)+","+CsvField(country.currency)+","+
                 CsvField(event.name)+","+Importance(event.importance)+","+
                 ValueText(values[i].HasActualValue(),values[i].GetActualValue(),(int)event.digits)+","+
                 ValueText(values[i].HasForecastValue(),values[i].GetForecastValue(),(int)event.digits)+","+
                 ValueText(values[i].HasPreviousValue(),values[i].GetPreviousValue(),(int)event.digits)+","+
                 ValueText(values[i].HasRevisedValue(),values[i].GetRevisedValue(),(int)event.digits)+","+
                 EnumWord(EnumToString(event.unit),"CALENDAR_UNIT_")+","+
                 EnumWord(EnumToString(event.multiplier),"CALENDAR_MULTIPLIER_")+","+
                 IntegerToString((long)event.id)+","+IntegerToString((long)values[i].id)+"\r\n";
      FileWriteString(h,row);
      written++;
     }
   FileClose(h);
   Print(__FUNCTION__,": wrote ",IntegerToString(written)," calendar values to MQL5\\Files\\",InpFileName,
         (skipped>0 ? ", skipped "+IntegerToString(skipped)+" without event or country" : ""),
         "; server clock UTC",Offset(offset),(InpServerTz=="" ? " (set InpServerTz if the broker has daylight saving)" : ""));
  }
//+------------------------------------------------------------------+
