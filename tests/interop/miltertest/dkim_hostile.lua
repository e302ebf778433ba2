-- dkim_hostile.lua - postern-dkim under hostile input from the MTA side:
-- forged Authentication-Results, broken signatures, empty and odd header
-- fields, an aborted message, a message with no headers; it must answer
-- every step and keep serving the connection.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
require("common")

local conn = open("client.example", "192.0.2.10")

-- 1: our own authserv-id forged by the sender is deleted, others kept
envelope(conn, "<x@z.test>", "<bob@r.test>")
headers(conn, {
	{ "Authentication-Results", "postern.test; dkim=pass header.d=bank.test" },
	{ "Authentication-Results", "other.test; dkim=pass" },
	{ "Authentication-Results", " (comment) POSTERN.TEST; spf=pass" },
	{ "From", "x@z.test" },
})
check(finish(conn, "x\r\n") == SMFIR_ACCEPT, "forged A-R: accept")
check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
      mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results"), "forged A-R deleted")

-- 2: an aborted message, then a new one on the same connection
envelope(conn, "<x@z.test>", "<bob@r.test>")
step(conn, "header", SMFIR_CONTINUE, mt.header, "From", "x@z.test")
mt.abort(conn)

-- 3: broken signatures and odd fields (miltertest itself overflows a stack
-- buffer on fields past about 1 KiB, so the huge ones are sent through
-- Postfix in test_filter_dkim.py instead)
envelope(conn, "<x@z.test>", "<bob@r.test>")
headers(conn, {
	{ "DKIM-Signature", "v=1; a=rsa-sha256; d=d.test; s=sel; h=from; bh=!!; b=!!" },
	{ "DKIM-Signature", "" },
	{ "DKIM-Signature", "v=1; " .. string.rep("x=y; ", 150) },
	{ "DKIM-Signature", "v=1; a=rsa-sha256; d=\"q\\\"uote\"; s=s; h=from; bh=AA; b=AA" },
	{ "X-Empty", "" },
	{ "From", "" },
	{ "From", "second@z.test" },
	{ "X-8bit", "\195\164\195\182\195\188" },
})
local r = finish(conn, string.rep("line\r\n", 2000))
check(r == SMFIR_ACCEPT, "broken signatures: accept, got " .. tostring(r))
local ar = mt.getheader(conn, "Authentication-Results", 0)
check(ar ~= nil and string.find(ar, "dkim=permerror", 1, true),
      "broken signatures: permerror, got " .. tostring(ar))
check(not string.find(ar, "\n[^\t]"), "A-R continuation lines are folded")

-- 4: no header fields at all, empty body
envelope(conn, "<>", "<bob@r.test>")
step(conn, "eoh", SMFIR_CONTINUE, mt.eoh)
check(finish(conn, nil) == SMFIR_ACCEPT, "no headers: accept")
mt.disconnect(conn)
print("ok")
