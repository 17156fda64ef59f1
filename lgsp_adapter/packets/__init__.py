"""Packets: what an agency sends, read and written: edXML documents and status receipts (QCVN
102:2016), tax–transport packets, agency codes and tax ids, the hardened XML parser every
byte of XML goes through, and the national axis' wire format (its signed ``XroadVnpt-`` headers).

Pure codecs: no I/O beyond the bytes handed in. May import ``errors`` only; every other layer
may import this one.
"""
