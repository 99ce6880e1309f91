-- wrk script for `make bench` (go run ./bench).
--
-- Arguments (after wrk's "--"): <method> <body file or "-"> ["Name: value"...]
-- init() sets the one request every connection repeats (wrk builds it once,
-- so the script costs nothing per request); done() prints one line,
-- "BENCH_RESULT {json}", that the runner parses instead of wrk's human output.

local function readfile(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

function init(args)
	wrk.method = args[1] or "GET"
	if args[2] and args[2] ~= "-" then
		wrk.body = readfile(args[2])
	end
	for i = 3, #args do
		local name, value = args[i]:match("^([^:]+):%s*(.*)$")
		if name then
			wrk.headers[name] = value
		end
	end
end

-- summary.errors.status counts responses with a status above 399.
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
		'"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
		summary.requests, summary.duration, summary.bytes,
		latency:percentile(50), latency:percentile(99), latency.max,
		e.status, e.connect, e.read, e.write, e.timeout))
end
