-- wrk script for the hot-channel and many-channel benchmarks (issue #14):
-- every request is a message send, POST /api/channels/{id}/messages, with a
-- client_msg_id unique to the run, so every acknowledged send can be checked
-- against the log afterwards.
--
--   WRK_TARGETS=targets.txt WRK_ACKED=/tmp/acked WRK_RUN=hot1 \
--     wrk -t 64 -c 64 -d 20s -s wrk-send.lua http://127.0.0.1:PORT
--
-- WRK_TARGETS: lines "TOKEN CHANNEL_ID" (perf-setup writes them). wrk's Lua
-- has no per-connection hook, so run one connection per thread (-t = -c):
-- thread i sends as user i into its line's channel.
-- WRK_ACKED: thread i appends "STATUS CLIENT_MSG_ID" per answer to
-- WRK_ACKED.i. With one connection per thread, answers come in request
-- order, so each answer belongs to the thread's last request.

local lines = nil
local threads = 0

function setup(thread)
  if lines == nil then
    lines = {}
    for line in io.lines(os.getenv("WRK_TARGETS")) do
      table.insert(lines, line)
    end
  end
  thread:set("id", threads)
  thread:set("target", lines[(threads % #lines) + 1])
  threads = threads + 1
end

function init(args)
  local token, channel = target:match("^(%S+) (%S+)$")
  path = "/api/channels/" .. channel .. "/messages"
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  prefix = os.getenv("WRK_RUN") .. "-" .. id .. "-"
  acked = io.open(os.getenv("WRK_ACKED") .. "." .. id, "w")
  -- Line-buffered: wrk exits without closing thread states.
  acked:setvbuf("line")
  sent = 0
end

function request()
  sent = sent + 1
  last = prefix .. sent
  local body = '{"content":"wrk ' .. last
    .. ': the quick brown fox jumps over the lazy dog","type":"text","client_msg_id":"'
    .. last .. '"}'
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  acked:write(status, " ", last, "\n")
end
