-- common.lua - helpers shared by the postern filter miltertest scripts.
-- A failed check prints its reason and exits 1 (a bare error() would exit
-- without saying why). The milter socket comes from MILTER_SOCKET.

function check(cond, what)
	if not cond then
		print("FAIL: " .. what)
		os.exit(1)
	end
end

-- Run one step that returns nil on success (mt.header, mt.eoh, ...), then
-- require the given reply.
function step(conn, what, reply, f, ...)
	local ok, err = pcall(f, conn, ...)
	check(ok and err == nil, what .. " failed: " .. tostring(err))
	local r = mt.getreply(conn)
	check(r == reply, what .. ": unexpected reply " .. tostring(r))
end

function open(host, ip)
	local conn = mt.connect(os.getenv("MILTER_SOCKET"), 40, 0.25)
	check(conn ~= nil, "connect to " .. tostring(os.getenv("MILTER_SOCKET")))
	step(conn, "conninfo", SMFIR_CONTINUE, mt.conninfo, host, ip)
	return conn
end

function envelope(conn, from, rcpt, macros)
	mt.macro(conn, SMFIC_MAIL, "i", "MTQID01", table.unpack(macros or {}))
	step(conn, "mailfrom", SMFIR_CONTINUE, mt.mailfrom, from)
	-- a filter may negotiate RCPT away (postern-dkim does)
	if not mt.test_option(conn, SMFIP_NORCPT) then
		step(conn, "rcptto", SMFIR_CONTINUE, mt.rcptto, rcpt)
	end
end

function headers(conn, list)
	for _, h in ipairs(list) do
		step(conn, "header " .. h[1], SMFIR_CONTINUE, mt.header, h[1], h[2])
	end
	step(conn, "eoh", SMFIR_CONTINUE, mt.eoh)
end

-- Send the body and end of message; return the final reply.
function finish(conn, body)
	if body ~= nil then
		step(conn, "body", SMFIR_CONTINUE, mt.bodystring, body)
	end
	local ok, err = pcall(mt.eom, conn)
	check(ok and err == nil, "eom failed: " .. tostring(err))
	return mt.getreply(conn)
end
