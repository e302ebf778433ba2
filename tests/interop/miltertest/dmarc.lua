-- dmarc.lua - postern-dmarc through miltertest: results taken from trusted
-- Authentication-Results fields, and From fields Postfix would repair
-- before a milter sees them (a missing From).
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
require("common")

local function dmarc(conn)
	for i = 0, 5 do
		local v = mt.getheader(conn, "Authentication-Results", i)
		if v ~= nil and string.find(v, "dmarc=", 1, true) then
			return v
		end
	end
	return nil
end

local conn = open("client.example", "192.0.2.10")

-- an SPF pass from a trusted authserv-id (an earlier filter's field)
envelope(conn, "<a@d.test>", "<b@r.test>")
headers(conn, {
	{ "Authentication-Results", "postern.test; spf=pass smtp.mailfrom=a@d.test" },
	{ "From", "a@d.test" },
})
check(finish(conn, nil) == SMFIR_ACCEPT, "trusted spf: accept")
local v = dmarc(conn)
check(v ~= nil and string.find(v, "dmarc=pass", 1, true), "trusted spf: pass, got " .. tostring(v))

-- the same from an untrusted id: fail; a forged dmarc= field is deleted
envelope(conn, "<a@d.test>", "<b@r.test>")
headers(conn, {
	{ "Authentication-Results", "evil.test; spf=pass smtp.mailfrom=a@d.test" },
	{ "Authentication-Results", "postern.test; dmarc=pass header.from=d.test" },
	{ "From", "a@d.test" },
})
check(finish(conn, nil) == SMFIR_ACCEPT, "untrusted: accept (report only)")
v = dmarc(conn)
check(v ~= nil and string.find(v, "dmarc=fail", 1, true), "untrusted: fail, got " .. tostring(v))
check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
      mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results"), "forged dmarc= deleted")

-- no From at all
envelope(conn, "<a@d.test>", "<b@r.test>")
headers(conn, { { "Subject", "no from" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "no From: accept")
v = dmarc(conn)
check(v ~= nil and string.find(v, "dmarc=permerror (no From field)", 1, true),
      "no From: permerror, got " .. tostring(v))

-- an empty From, a From of odd bytes
envelope(conn, "<a@d.test>", "<b@r.test>")
headers(conn, { { "From", "" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "empty From: accept")
envelope(conn, "<a@d.test>", "<b@r.test>")
headers(conn, { { "From", "<\1\2@\255\254>" } })
check(finish(conn, nil) == SMFIR_ACCEPT, "odd From: accept")

-- From domains in U-labels (RFC 8616): aligned through their A-labels; not
-- UTF-8, or no A-label: a From that is not usable (decimal escapes: Lua 5.1)
envelope(conn, "<j@b\195\188cher.test>", "<b@r.test>")
headers(conn, {
	{ "Authentication-Results", "postern.test; spf=pass smtp.mailfrom=xn--bcher-kva.test" },
	{ "From", "J\195\182rg <j@B\195\188cher.test>" },
})
check(finish(conn, nil) == SMFIR_ACCEPT, "U-label From: accept")
v = dmarc(conn)
check(v ~= nil and string.find(v, "dmarc=pass", 1, true) and
      string.find(v, "header.from=xn--bcher-kva.test", 1, true), "U-label From: pass, got " .. tostring(v))
for _, dom in ipairs({ "b\195(.test", "\192\175.test", "\237\160\128.test",
		       "\226\152\131.test", string.rep("a", 58) .. "\195\188.test" }) do
	envelope(conn, "<a@d.test>", "<b@r.test>")
	headers(conn, { { "From", "<a@" .. dom .. ">" } })
	check(finish(conn, nil) == SMFIR_ACCEPT, "bad U-label From: accept")
	v = dmarc(conn)
	check(v ~= nil and string.find(v, "dmarc=permerror", 1, true),
	      "bad U-label From: permerror, got " .. tostring(v))
end
mt.disconnect(conn)
print("ok")
