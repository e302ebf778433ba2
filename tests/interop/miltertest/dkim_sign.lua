-- dkim_sign.lua - postern-dkim signs mail from an internal client, and mail
-- from an authenticated client elsewhere; not mail from other clients.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
require("common")

local hdrs = {
	{ "From", "Alice <alice@d.test>" },
	{ "To", "bob@r.test" },
	{ "Subject", "miltertest signing" },
	{ "Date", "Mon, 23 Nov 2026 18:00:00 +0000" },
}

-- internal (127.0.0.1 is in the default InternalHosts)
local conn = open("localhost", "127.0.0.1")
envelope(conn, "<alice@d.test>", "<bob@r.test>")
headers(conn, hdrs)
check(finish(conn, "Hello.\r\n") == SMFIR_ACCEPT, "internal: accept")
check(mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature"), "internal: DKIM-Signature inserted")
local sig = mt.getheader(conn, "DKIM-Signature", 0)
check(sig ~= nil and string.find(sig, "d=d.test", 1, true), "signature names d=d.test")
check(string.find(sig, "s=sel", 1, true), "signature names s=sel")
check(not mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results"), "signer adds no A-R")
mt.disconnect(conn)

-- authenticated, from outside
conn = open("client.example", "192.0.2.10")
envelope(conn, "<alice@d.test>", "<bob@r.test>", { "{auth_authen}", "alice" })
headers(conn, hdrs)
check(finish(conn, "Hello.\r\n") == SMFIR_ACCEPT, "authenticated: accept")
check(mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature"), "authenticated: signed")
mt.disconnect(conn)

-- neither: verified instead (no signature there: dkim=none)
conn = open("client.example", "192.0.2.10")
envelope(conn, "<alice@d.test>", "<bob@r.test>")
headers(conn, hdrs)
check(finish(conn, "Hello.\r\n") == SMFIR_ACCEPT, "external: accept")
check(not mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature"), "external: not signed")
local ar = mt.getheader(conn, "Authentication-Results", 0)
check(ar ~= nil and string.find(ar, "dkim=none", 1, true), "external: dkim=none, got " .. tostring(ar))
mt.disconnect(conn)
print("ok")
