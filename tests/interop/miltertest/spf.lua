-- spf.lua - postern-spf through miltertest: results in Received-SPF and
-- Authentication-Results, the null sender, and hostile envelope values.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
require("common")

local function check_spf(conn, want)
	local rs = mt.getheader(conn, "Received-SPF", 0)
	check(rs ~= nil and string.sub(rs, 1, #want + 1) == " " .. want or
	      rs ~= nil and string.sub(rs, 1, #want) == want,
	      "Received-SPF " .. want .. ", got " .. tostring(rs))
end

-- pass, from an address in pass.test's ip4: range
local conn = open("client.example", "192.0.2.10")
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "client.test")
envelope(conn, "<a@pass.test>", "<b@r.test>")
headers(conn, { { "From", "a@pass.test" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "pass: accept")
check(mt.eom_check(conn, MT_HDRINSERT, "Received-SPF"), "Received-SPF inserted")
check_spf(conn, "pass")

-- the same connection, a second message: fail
envelope(conn, "<a@fail.test>", "<b@r.test>")
headers(conn, { { "From", "a@fail.test" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "fail: accept (tag only)")
check_spf(conn, "fail")

-- null sender: the HELO identity
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "pass.test")
envelope(conn, "<>", "<b@r.test>")
headers(conn, { { "From", "mailer-daemon@pass.test" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "null sender: accept")
local ar = mt.getheader(conn, "Authentication-Results", 0)
check(ar ~= nil and string.find(ar, "spf=pass smtp.helo=pass.test", 1, true),
      "null sender: helo pass, got " .. tostring(ar))

-- hostile values: never a crash, always an answer (miltertest itself
-- overflows its stack on arguments past about 1 KiB, so these stay short)
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "\1\2 bad helo;\"=")
envelope(conn, "<" .. string.rep("x", 200) .. "@pass.test>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "long local part: accept")
envelope(conn, "<\"a b;c\"@pass.test>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "quoted local part: accept")
local rs = mt.getheader(conn, "Received-SPF", 0)
check(rs ~= nil and string.find(rs, "envelope-from=\"\\\"a b;c\\\"@pass.test\";", 1, true),
      "quoted envelope-from, got " .. tostring(rs))
envelope(conn, "<a@" .. string.rep("l.", 60) .. "test>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "long domain: accept")
envelope(conn, "<a@%{l}.test>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "macro in domain: accept")

-- internationalised domains (RFC 8616): U-labels are checked as their
-- A-labels (xn--bcher-kva.test publishes the record); bytes that are not
-- UTF-8, or no A-label, give none. Decimal escapes: Lua 5.1.
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "client.test")
envelope(conn, "<j\195\182rg@b\195\188cher.test>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "U-label sender: accept")
check_spf(conn, "pass")
for _, dom in ipairs({ "b\195(.test", "\192\175.test", "\237\160\128.test",
		       "b\195", "\226\152\131.test", string.rep("a", 58) .. "\195\188.test" }) do
	envelope(conn, "<a@" .. dom .. ">", "<b@r.test>")
	headers(conn, { { "From", "x" } })
	check(finish(conn, nil) == SMFIR_ACCEPT, "bad U-label: accept")
	check_spf(conn, "none")
end
-- the HELO identity in U-labels, and one that is not UTF-8
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "b\195\188cher.test")
envelope(conn, "<>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "U-label helo: accept")
check_spf(conn, "pass")
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "b\255\254cher.test")
envelope(conn, "<>", "<b@r.test>")
headers(conn, { { "From", "x" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "bad helo bytes: accept")
check_spf(conn, "none")
mt.disconnect(conn)

-- an IPv4-mapped IPv6 client is checked as IPv4
conn = open("client.example", "::ffff:192.0.2.10")
step(conn, "helo", SMFIR_CONTINUE, mt.helo, "client.test")
envelope(conn, "<a@pass.test>", "<b@r.test>")
headers(conn, { { "From", "a@pass.test" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "mapped: accept")
check_spf(conn, "pass")
mt.disconnect(conn)
print("ok")
