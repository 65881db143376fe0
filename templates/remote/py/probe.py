"""The health probe: an HTTP GET over the release's unix socket, with the venv's python
(always there, unlike curl).

Run as `python -c "$PY_PROBE" PATH HOST WANT SOCKET`. Prints the status line; fails unless
the status is WANT (or, for `any`, below 500).
"""

import socket
import sys

path, host, want, sock = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sock)
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    line = s.recv(256).split(b"\r\n")[0].decode()
except OSError as e:
    print("%s: %s" % (sock, e))
    sys.exit(1)
print("GET %s -> %s" % (path, line))
code = int(line.split()[1]) if line.startswith("HTTP/") else 0
ok = 0 < code < 500 if want == "any" else code == int(want)
sys.exit(0 if ok else 1)
