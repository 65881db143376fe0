"""The health probe: an HTTP GET over the release's unix socket, with the venv's python
(always there, unlike curl).

Run as `python -c "$PY_PROBE" PATH HOST WANT SOCKET`. Prints the status line; exits 0 when
the status is WANT (for `ok`: any 2xx or 3xx), 2 on a 4xx that is not WANT (the app answered,
and will answer the same: no use waiting), 1 otherwise (no answer yet, or an error status).
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
ok = 200 <= code < 400 if want == "ok" else code == int(want)
sys.exit(0 if ok else 2 if 400 <= code < 500 else 1)
