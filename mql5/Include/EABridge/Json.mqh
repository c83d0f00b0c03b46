//+------------------------------------------------------------------+
//|                                                     Json.mqh     |
//|  Encoding of requests and decoding of replies for docs/protocol.md|
//+------------------------------------------------------------------+
//| CJsonWriter builds compact JSON text; CJsonDoc parses a reply into |
//| a flat node table (no recursion through objects, no pointers) so   |
//| lookups are plain index arithmetic. The Bridge* functions know the |
//| protocol: which fields a request carries and which a reply must.   |
//| Decoding is strict where trading depends on it: a target's         |
//| direction must be the JSON integer -1, 0 or 1; nothing is guessed  |
//| from text (a substring test such as StringFind(reply,"buy") is     |
//| true when "buy" is absent and was a real EA's reversal bug).       |
//+------------------------------------------------------------------+
#ifndef EABRIDGE_JSON_MQH
#define EABRIDGE_JSON_MQH

#include <EABridge/Protocol.mqh>

#define JSON_MAX_DEPTH            32

enum ENUM_JSON_TYPE
  {
   JSON_NULL=0,
   JSON_BOOL=1,
   JSON_NUMBER=2,
   JSON_STRING=3,
   JSON_ARRAY=4,
   JSON_OBJECT=5
  };

//+------------------------------------------------------------------+
//| The size of a text on the wire: UTF-8 bytes. StringLen counts     |
//| UTF-16 units, which is fewer for any non-ASCII text, so the       |
//| protocol's byte limit is never checked with it.                   |
//+------------------------------------------------------------------+
int BridgeUtf8Bytes(const string text)
  {
   uchar bytes[];
   return(StringToCharArray(text,bytes,0,WHOLE_ARRAY,CP_UTF8)-1);   // without the terminating 0
  }
//+------------------------------------------------------------------+
//| JSON string literal with the escapes RFC 8259 requires. Runs of   |
//| plain characters are copied whole, so a character outside the    |
//| BMP (two UTF-16 units) is never cut in half.                      |
//+------------------------------------------------------------------+
string JsonQuote(const string text)
  {
   string out="\"";
   int n=StringLen(text);
   int run=0;   // start of the current run of characters that need no escape
   for(int i=0;i<n;i++)
     {
      ushort c=StringGetCharacter(text,i);
      if(c!='"' && c!='\\' && c>=0x20)
         continue;
      if(i>run)
         out+=StringSubstr(text,run,i-run);
      run=i+1;
      if(c=='"')
         out+="\\\"";
      else if(c=='\\')
         out+="\\\\";
      else if(c=='\n')
         out+="\\n";
      else if(c=='\r')
         out+="\\r";
      else if(c=='\t')
         out+="\\t";
      else
         out+=StringFormat("\\u%04x",(int)c);
     }
   if(n>run)
      out+=StringSubstr(text,run,n-run);
   return(out+"\"");
  }
//+------------------------------------------------------------------+
//| A number as JSON: shortest fixed form with `digits` decimals at   |
//| most, trailing zeros dropped ("1.0868", "0.1", "336.0" -> "336"). |
//+------------------------------------------------------------------+
string JsonNumber(const double value,const int digits)
  {
   string s=DoubleToString(value,digits);
   if(StringFind(s,".")>=0)
     {
      int n=StringLen(s);
      while(n>0 && StringGetCharacter(s,n-1)=='0')
         n--;
      if(n>0 && StringGetCharacter(s,n-1)=='.')
         n--;
      s=StringSubstr(s,0,n);
     }
   if(s=="-0")
      s="0";
   return(s);
  }

//+------------------------------------------------------------------+
//| Compact JSON builder: commas and nesting are tracked for the      |
//| caller; a non-finite number marks the whole message invalid.      |
//+------------------------------------------------------------------+
class CJsonWriter
  {
private:
   string            m_text;
   int               m_count[];     // values written so far at each open level
   int               m_depth;
   bool              m_after_key;
   bool              m_ok;

   void              BeforeValue(void)
     {
      if(m_after_key)
        {
         m_after_key=false;
         return;
        }
      if(m_depth>0)
        {
         if(m_count[m_depth-1]>0)
            m_text+=",";
         m_count[m_depth-1]++;
        }
     }
   void              Open(const string bracket)
     {
      BeforeValue();
      m_text+=bracket;
      m_depth++;
      ArrayResize(m_count,m_depth);
      m_count[m_depth-1]=0;
     }
   void              Close(const string bracket)
     {
      if(m_depth<=0)
        {
         m_ok=false;
         return;
        }
      m_depth--;
      m_text+=bracket;
     }

public:
                     CJsonWriter(void) : m_depth(0),m_after_key(false),m_ok(true) {}
   void              BeginObject(void)                 { Open("{");  }
   void              EndObject(void)                   { Close("}"); }
   void              BeginArray(void)                  { Open("[");  }
   void              EndArray(void)                    { Close("]"); }
   void              Key(const string name)
     {
      BeforeValue();
      m_text+=JsonQuote(name)+":";
      m_after_key=true;
     }
   void              String(const string value)        { BeforeValue(); m_text+=JsonQuote(value); }
   void              Integer(const long value)         { BeforeValue(); m_text+=IntegerToString(value); }
   void              Bool(const bool value)            { BeforeValue(); m_text+=(value ? "true" : "false"); }
   void              Null(void)                        { BeforeValue(); m_text+="null"; }
   void              Number(const double value,const int digits)
     {
      BeforeValue();
      if(!MathIsValidNumber(value))
        {
         m_ok=false;   // JSON has no NaN or Infinity; the protocol rejects them
         m_text+="null";
         return;
        }
      m_text+=JsonNumber(value,digits);
     }
   bool              Ok(void) const                    { return(m_ok && m_depth==0); }
   string            Text(void) const                  { return(m_text); }
  };

//+------------------------------------------------------------------+
//| Parsed JSON as a node table: node 0 is the root; every node knows |
//| its parent, key (inside objects) and, for scalars, its text.      |
//+------------------------------------------------------------------+
class CJsonDoc
  {
private:
   int               m_type[];
   int               m_parent[];
   string            m_key[];
   string            m_text[];     // string value, or the number's token, or "true"/"false"
   int               m_nodes;
   string            m_src;
   int               m_len;
   int               m_pos;
   string            m_error;

   int               Add(const int type,const int parent,const string key,const string text)
     {
      if(m_nodes>=ArraySize(m_type))
        {
         int size=MathMax(16,m_nodes*2);
         ArrayResize(m_type,size);
         ArrayResize(m_parent,size);
         ArrayResize(m_key,size);
         ArrayResize(m_text,size);
        }
      m_type[m_nodes]=type;
      m_parent[m_nodes]=parent;
      m_key[m_nodes]=key;
      m_text[m_nodes]=text;
      m_nodes++;
      return(m_nodes-1);
     }
   ushort            Peek(void) const { return(m_pos<m_len ? StringGetCharacter(m_src,m_pos) : (ushort)0); }
   void              SkipSpace(void)
     {
      while(m_pos<m_len)
        {
         ushort c=StringGetCharacter(m_src,m_pos);
         if(c!=' ' && c!='\t' && c!='\n' && c!='\r')
            break;
         m_pos++;
        }
     }
   bool              Fail(const string what)
     {
      if(m_error=="")
         m_error=what+" at character "+IntegerToString(m_pos);
      return(false);
     }
   bool              Literal(const string word)
     {
      if(StringSubstr(m_src,m_pos,StringLen(word))!=word)
         return(Fail("invalid literal"));
      m_pos+=StringLen(word);
      return(true);
     }
   int               HexDigit(const ushort c) const
     {
      if(c>='0' && c<='9')
         return(c-'0');
      if(c>='a' && c<='f')
         return(c-'a'+10);
      if(c>='A' && c<='F')
         return(c-'A'+10);
      return(-1);
     }
   bool              ParseString(string &out)
     {
      m_pos++;   // opening quote
      out="";
      int run=m_pos;   // start of the current run of plain characters, copied in one piece
      while(m_pos<m_len)
        {
         ushort c=StringGetCharacter(m_src,m_pos);
         if(c=='"')
           {
            out+=StringSubstr(m_src,run,m_pos-run);
            m_pos++;
            return(true);
           }
         if(c<0x20)
            return(Fail("control character in string"));
         if(c!='\\')
           {
            m_pos++;
            continue;
           }
         out+=StringSubstr(m_src,run,m_pos-run);
         m_pos++;
         ushort e=Peek();
         m_pos++;
         if(e=='"')
            out+="\"";
         else if(e=='\\')
            out+="\\";
         else if(e=='/')
            out+="/";
         else if(e=='b')
            out+=ShortToString(8);
         else if(e=='f')
            out+=ShortToString(12);
         else if(e=='n')
            out+="\n";
         else if(e=='r')
            out+="\r";
         else if(e=='t')
            out+="\t";
         else if(e=='u')
           {
            int code=0;
            for(int k=0;k<4;k++)
              {
               int h=HexDigit(Peek());
               if(h<0)
                  return(Fail("bad \\u escape"));
               code=code*16+h;
               m_pos++;
              }
            out+=ShortToString((ushort)code);
           }
         else
            return(Fail("bad escape"));
         run=m_pos;
        }
      return(Fail("unterminated string"));
     }
   bool              ParseNumber(string &token)
     {
      int start=m_pos;
      if(Peek()=='-')
         m_pos++;
      if(Peek()=='0')
         m_pos++;
      else if(Peek()>='1' && Peek()<='9')
         while(Peek()>='0' && Peek()<='9')
            m_pos++;
      else
         return(Fail("invalid number"));
      if(Peek()=='.')
        {
         m_pos++;
         if(!(Peek()>='0' && Peek()<='9'))
            return(Fail("invalid number"));
         while(Peek()>='0' && Peek()<='9')
            m_pos++;
        }
      if(Peek()=='e' || Peek()=='E')
        {
         m_pos++;
         if(Peek()=='+' || Peek()=='-')
            m_pos++;
         if(!(Peek()>='0' && Peek()<='9'))
            return(Fail("invalid number"));
         while(Peek()>='0' && Peek()<='9')
            m_pos++;
        }
      token=StringSubstr(m_src,start,m_pos-start);
      return(true);
     }
   bool              ParseValue(const int parent,const string key,const int depth)
     {
      if(depth>JSON_MAX_DEPTH)
         return(Fail("nested too deep"));
      SkipSpace();
      ushort c=Peek();
      if(c=='{')
        {
         int node=Add(JSON_OBJECT,parent,key,"");
         m_pos++;
         SkipSpace();
         if(Peek()=='}')
           {
            m_pos++;
            return(true);
           }
         while(true)
           {
            SkipSpace();
            if(Peek()!='"')
               return(Fail("expected a key"));
            string name;
            if(!ParseString(name))
               return(false);
            SkipSpace();
            if(Peek()!=':')
               return(Fail("expected ':'"));
            m_pos++;
            if(!ParseValue(node,name,depth+1))
               return(false);
            SkipSpace();
            if(Peek()==',')
              {
               m_pos++;
               continue;
              }
            if(Peek()=='}')
              {
               m_pos++;
               return(true);
              }
            return(Fail("expected ',' or '}'"));
           }
        }
      if(c=='[')
        {
         int node=Add(JSON_ARRAY,parent,key,"");
         m_pos++;
         SkipSpace();
         if(Peek()==']')
           {
            m_pos++;
            return(true);
           }
         while(true)
           {
            if(!ParseValue(node,"",depth+1))
               return(false);
            SkipSpace();
            if(Peek()==',')
              {
               m_pos++;
               continue;
              }
            if(Peek()==']')
              {
               m_pos++;
               return(true);
              }
            return(Fail("expected ',' or ']'"));
           }
        }
      if(c=='"')
        {
         string value;
         if(!ParseString(value))
            return(false);
         Add(JSON_STRING,parent,key,value);
         return(true);
        }
      if(c=='t')
        {
         if(!Literal("true"))
            return(false);
         Add(JSON_BOOL,parent,key,"true");
         return(true);
        }
      if(c=='f')
        {
         if(!Literal("false"))
            return(false);
         Add(JSON_BOOL,parent,key,"false");
         return(true);
        }
      if(c=='n')
        {
         if(!Literal("null"))
            return(false);
         Add(JSON_NULL,parent,key,"");
         return(true);
        }
      string token;
      if(!ParseNumber(token))
         return(false);
      Add(JSON_NUMBER,parent,key,token);
      return(true);
     }

public:
                     CJsonDoc(void) : m_nodes(0),m_len(0),m_pos(0) {}
   //--- parse a whole text; false with Error() set when it is not exactly one JSON value
   bool              Parse(const string text)
     {
      m_nodes=0;
      m_error="";
      m_src=text;
      m_len=StringLen(text);
      m_pos=0;
      if(!ParseValue(-1,"",0))
         return(false);
      SkipSpace();
      if(m_pos!=m_len)
         return(Fail("unexpected text after the value"));
      return(true);
     }
   string            Error(void)              const { return(m_error); }
   int               Nodes(void)              const { return(m_nodes); }
   int               Type(const int node)     const { return(node>=0 && node<m_nodes ? m_type[node] : -1); }
   string            Key(const int node)      const { return(m_key[node]); }
   int               Parent(const int node)   const { return(m_parent[node]); }
   //--- the member `name` of an object node (the last one if repeated, as most parsers do); -1 if absent
   int               Member(const int object,const string name) const
     {
      int found=-1;
      for(int i=object+1;i<m_nodes;i++)
         if(m_parent[i]==object && m_key[i]==name)
            found=i;
      return(found);
     }
   //--- number of direct children of an array or object
   int               Count(const int node) const
     {
      int n=0;
      for(int i=node+1;i<m_nodes;i++)
         if(m_parent[i]==node)
            n++;
      return(n);
     }
   //--- the index-th direct child; -1 if there are fewer
   int               Child(const int node,const int index) const
     {
      int n=0;
      for(int i=node+1;i<m_nodes;i++)
         if(m_parent[i]==node)
           {
            if(n==index)
               return(i);
            n++;
           }
      return(-1);
     }
   string            Text(const int node)     const { return(m_text[node]); }
   double            Number(const int node)   const { return(StringToDouble(m_text[node])); }
   //--- true when the number is written as an integer (no fraction, no exponent)
   bool              IsInteger(const int node) const
     {
      if(Type(node)!=JSON_NUMBER)
         return(false);
      string t=m_text[node];
      return(StringFind(t,".")<0 && StringFind(t,"e")<0 && StringFind(t,"E")<0);
     }
   long              Integer(const int node)  const { return(StringToInteger(m_text[node])); }
   bool              Bool(const int node)     const { return(m_text[node]=="true"); }
  };

//+------------------------------------------------------------------+
//| Requests                                                          |
//+------------------------------------------------------------------+
void BridgeHeader(CJsonWriter &w,const string type,const string id)
  {
   w.Key("v");
   w.Integer(BRIDGE_PROTOCOL_VERSION);
   w.Key("type");
   w.String(type);
   w.Key("id");
   w.String(id);
  }
//--- signal: what the EA holds and its clock; bars (oldest first) are optional, count 0 sends none; base and quote
//--- are the symbol's currencies as the terminal knows them (SYMBOL_CURRENCY_BASE / _PROFIT), "" = not sent
bool BridgeSignalRequest(const string id,const string symbol,const datetime server_time,const long utc_offset,
                         const int direction,const double volume,const MqlRates &bars[],const int bar_count,
                         const int price_digits,const bool tester,string &out,const string base="",
                         const string quote="")
  {
   CJsonWriter w;
   w.BeginObject();
   BridgeHeader(w,BRIDGE_TYPE_SIGNAL,id);
   w.Key("symbol");
   w.String(symbol);
   if(base!="" && quote!="")
     {
      w.Key("base");
      w.String(base);
      w.Key("quote");
      w.String(quote);
     }
   w.Key("time");
   w.Integer((long)server_time);
   w.Key("utc_offset");
   w.Integer(utc_offset);
   w.Key("position");
   w.BeginObject();
   w.Key("direction");
   w.Integer(direction);
   w.Key("volume");
   w.Number(volume,8);
   w.EndObject();
   if(bar_count>0)
     {
      int first=MathMax(0,ArraySize(bars)-MathMin(bar_count,BRIDGE_MAX_BARS));
      w.Key("bars");
      w.BeginArray();
      for(int i=first;i<ArraySize(bars);i++)
        {
         w.BeginArray();
         w.Integer((long)bars[i].time);
         w.Number(bars[i].open,price_digits);
         w.Number(bars[i].high,price_digits);
         w.Number(bars[i].low,price_digits);
         w.Number(bars[i].close,price_digits);
         w.EndArray();
        }
      w.EndArray();
     }
   w.Key("tester");
   w.Bool(tester);
   w.EndObject();
   out=w.Text();
   return(w.Ok() && BridgeUtf8Bytes(out)<=BRIDGE_MAX_MESSAGE_BYTES);
  }
//--- hello: who is asking; the symbols it trades
bool BridgeHelloRequest(const string id,const string client,const long account,const string &symbols[],string &out)
  {
   CJsonWriter w;
   w.BeginObject();
   BridgeHeader(w,BRIDGE_TYPE_HELLO,id);
   w.Key("client");
   w.String(client);
   w.Key("account");
   w.Integer(account);
   w.Key("symbols");
   w.BeginArray();
   for(int i=0;i<ArraySize(symbols);i++)
      w.String(symbols[i]);
   w.EndArray();
   w.EndObject();
   out=w.Text();
   return(w.Ok());
  }
//--- ping and stats carry nothing but the header
bool BridgeBareRequest(const string type,const string id,string &out)
  {
   CJsonWriter w;
   w.BeginObject();
   BridgeHeader(w,type,id);
   w.EndObject();
   out=w.Text();
   return(w.Ok());
  }
//--- a calendar value the EA forwards as news; NaN marks a value the calendar does not have (sent as null)
bool BridgeNewsRequest(const string id,const string headline,const datetime server_time,const long utc_offset,
                       const string source,const string currency,const string event_name,const string impact,
                       const double actual,const double forecast,const double previous,string &out)
  {
   CJsonWriter w;
   w.BeginObject();
   BridgeHeader(w,BRIDGE_TYPE_NEWS,id);
   w.Key("headline");
   w.String(headline);
   w.Key("time");
   w.Integer((long)server_time);
   w.Key("utc_offset");
   w.Integer(utc_offset);
   w.Key("source");
   w.String(source);
   w.Key("currency");
   w.String(currency);
   w.Key("event");
   w.String(event_name);
   w.Key("impact");
   w.String(impact);
   w.Key("actual");
   if(MathIsValidNumber(actual))
      w.Number(actual,6);
   else
      w.Null();
   w.Key("forecast");
   if(MathIsValidNumber(forecast))
      w.Number(forecast,6);
   else
      w.Null();
   w.Key("previous");
   if(MathIsValidNumber(previous))
      w.Number(previous,6);
   else
      w.Null();
   w.EndObject();
   out=w.Text();
   //--- calendar names are localised and often not ASCII: the limit is the frame's UTF-8 bytes
   return(w.Ok() && BridgeUtf8Bytes(out)<=BRIDGE_MAX_MESSAGE_BYTES);
  }

//+------------------------------------------------------------------+
//| Replies                                                           |
//+------------------------------------------------------------------+
struct BridgeReply
  {
   string            type;        // "target", "ack", "pong" or "error"
   string            id;          // the request's id ("" when the server sent null)
   //--- target
   string            symbol;
   int               direction;   // -1, 0 or +1, validated
   double            strength;
   double            sl;          // stop-loss distance in price units, 0 = none
   double            tp;          // take-profit distance in price units, 0 = none
   datetime          as_of;       // UTC
   datetime          expires;     // UTC, 0 = no expiry
   int               reasons;
   //--- error
   string            code;
   string            message;
   //--- pong
   datetime          time;
  };

bool BridgeReplyFail(string &error,const string what)
  {
   error=what;
   return(false);
  }
//--- a member that must be a finite JSON number
bool BridgeNumberField(CJsonDoc &doc,const string field,double &value,string &error)
  {
   int node=doc.Member(0,field);
   if(node<0)
      return(BridgeReplyFail(error,"missing field '"+field+"'"));
   if(doc.Type(node)!=JSON_NUMBER)
      return(BridgeReplyFail(error,"field '"+field+"' is not a number"));
   value=doc.Number(node);
   if(!MathIsValidNumber(value))
      return(BridgeReplyFail(error,"field '"+field+"' is not finite"));
   return(true);
  }
//--- a member that must be a JSON integer (times, direction)
bool BridgeIntegerField(CJsonDoc &doc,const string field,long &value,string &error)
  {
   int node=doc.Member(0,field);
   if(node<0)
      return(BridgeReplyFail(error,"missing field '"+field+"'"));
   if(!doc.IsInteger(node))
      return(BridgeReplyFail(error,"field '"+field+"' is not an integer"));
   value=doc.Integer(node);
   return(true);
  }
//+------------------------------------------------------------------+
//| Decode one reply frame. False with `error` set for anything that  |
//| is not a valid v1 reply; a valid `error` reply decodes to true    |
//| with type "error", code and message.                              |
//+------------------------------------------------------------------+
bool BridgeDecodeReply(const string text,BridgeReply &reply,string &error)
  {
   reply.type="";
   reply.id="";
   reply.symbol="";
   reply.direction=0;
   reply.strength=0.0;
   reply.sl=0.0;
   reply.tp=0.0;
   reply.as_of=0;
   reply.expires=0;
   reply.reasons=0;
   reply.code="";
   reply.message="";
   reply.time=0;
   error="";
   CJsonDoc doc;
   if(!doc.Parse(text))
      return(BridgeReplyFail(error,"reply is not valid JSON: "+doc.Error()));
   if(doc.Type(0)!=JSON_OBJECT)
      return(BridgeReplyFail(error,"reply is not a JSON object"));
   long version=0;
   if(!BridgeIntegerField(doc,"v",version,error))
      return(false);
   if(version!=BRIDGE_PROTOCOL_VERSION)
      return(BridgeReplyFail(error,"reply has protocol version "+IntegerToString(version)+", expected "+IntegerToString(BRIDGE_PROTOCOL_VERSION)));
   int node=doc.Member(0,"type");
   if(node<0 || doc.Type(node)!=JSON_STRING)
      return(BridgeReplyFail(error,"reply has no string field 'type'"));
   reply.type=doc.Text(node);
   node=doc.Member(0,"id");
   if(node<0)
      return(BridgeReplyFail(error,"missing field 'id'"));
   if(doc.Type(node)==JSON_STRING)
      reply.id=doc.Text(node);
   else if(doc.Type(node)!=JSON_NULL)
      return(BridgeReplyFail(error,"field 'id' is neither a string nor null"));
   //--- exact comparisons only: the type decides what the EA does
   if(reply.type==BRIDGE_TYPE_ERROR)
     {
      node=doc.Member(0,"code");
      if(node<0 || doc.Type(node)!=JSON_STRING)
         return(BridgeReplyFail(error,"error reply without a string 'code'"));
      reply.code=doc.Text(node);
      node=doc.Member(0,"message");
      if(node>=0 && doc.Type(node)==JSON_STRING)
         reply.message=doc.Text(node);
      return(true);
     }
   if(reply.type==BRIDGE_TYPE_ACK)
      return(true);
   if(reply.type==BRIDGE_TYPE_PONG)
     {
      long t=0;
      if(doc.Member(0,"time")>=0 && !BridgeIntegerField(doc,"time",t,error))
         return(false);
      reply.time=(datetime)t;
      return(true);
     }
   if(reply.type!=BRIDGE_TYPE_TARGET)
      return(BridgeReplyFail(error,"unknown reply type '"+reply.type+"'"));
   node=doc.Member(0,"symbol");
   if(node<0 || doc.Type(node)!=JSON_STRING || doc.Text(node)=="")
      return(BridgeReplyFail(error,"target without a string 'symbol'"));
   reply.symbol=doc.Text(node);
   long direction=0;
   if(!BridgeIntegerField(doc,"direction",direction,error))
      return(false);
   if(direction!=-1 && direction!=0 && direction!=1)
      return(BridgeReplyFail(error,"field 'direction' is "+IntegerToString(direction)+", expected -1, 0 or 1"));
   reply.direction=(int)direction;
   if(!BridgeNumberField(doc,"strength",reply.strength,error))
      return(false);
   if(!BridgeNumberField(doc,"sl",reply.sl,error) || !BridgeNumberField(doc,"tp",reply.tp,error))
      return(false);
   if(reply.strength<0.0 || reply.sl<0.0 || reply.tp<0.0)
      return(BridgeReplyFail(error,"strength, sl and tp must be >= 0"));
   long as_of=0,expires=0;
   if(!BridgeIntegerField(doc,"as_of",as_of,error) || !BridgeIntegerField(doc,"expires",expires,error))
      return(false);
   reply.as_of=(datetime)as_of;
   reply.expires=(datetime)expires;
   node=doc.Member(0,"reasons");
   if(node>=0 && doc.Type(node)==JSON_ARRAY)
      reply.reasons=doc.Count(node);
   return(true);
  }
#endif
//+------------------------------------------------------------------+
