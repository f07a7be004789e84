"""A fast read path for SMB shares: smbprotocol sets the session up, this package reads.

smbprotocol builds and parses a generic message object for every request and answer, in
Python and under the GIL, and its receive thread hands each answer to the caller's thread:
for a small file that machinery, not the server, is most of the cost. Here smbprotocol
still does what is hard and rare (negotiate, NTLM/Kerberos authentication, key
derivation, tree connect); then its receive thread is retired and the already
authenticated socket is driven directly: CREATE + READ + CLOSE compounds packed with
``struct`` (``wire``), signed or sealed once per message with the session's keys
(``security``), several files in flight within the credits the server grants
(``channel``), files read through that (``reader``) and folders listed (``listing``).

``sharelift.storage.smb_source`` chooses this path when it can and keeps smbprotocol's
own for everything else (stat, DFS, reparse points, dialects before SMB 2.1).
"""

from __future__ import annotations
