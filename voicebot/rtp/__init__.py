"""voicebot.rtp — the RTP media layer (RFC 3550 / 3551 / 4733), asyncio and uvloop compatible.

Modules, each one concern:
  g711       numpy lookup-table mu-law/A-law codecs and the PCMU/PCMA registry
  packet     RtpPacket parse/serialise (RtpError on malformed input), is_rtcp() demux
  jitter     JitterBuffer: reorder by sequence, loss concealment for the recogniser (pure logic)
  dtmf       RFC 4733 telephone-event: DtmfReceiver (each digit once) and DtmfSender
  rtcp       SR / RR / SDES CNAME / BYE build and compound parse (RtcpError on malformed input)
  reception  RFC 3550 receiver statistics: extended sequence, loss, A.8 interarrival jitter
  ticker     MediaTicker: the one process-wide 20 ms clock (get_ticker())
  ports      PortAllocator: even RTP / odd RTCP port pairs from a configured range
  stream     RtpStream: one call's media — symmetric RTP, playback, DTMF, RTCP, stats
"""
