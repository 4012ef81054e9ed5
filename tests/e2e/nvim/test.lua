-- End-to-end checks of the Neovim plugin against the real coremlq-lsp.
-- Run by tests/e2e/run.sh as:
--   nvim --headless -u init.lua -c 'luafile test.lua'
-- in a workspace holding the fixture configs and the model. Writes one JSON line per
-- check ({"name", "ok", "detail"}) to $COREMLQ_E2E_RESULTS and exits 0, or 1 on failure.

local results_path = assert(vim.env.COREMLQ_E2E_RESULTS, 'COREMLQ_E2E_RESULTS is not set')
local results = assert(io.open(results_path, 'w'))
local failed = 0
local ws = vim.fn.getcwd()

local step_start = vim.uv.hrtime()

local function record(name, ok, detail)
  if not ok then
    failed = failed + 1
  end
  local text = type(detail) == 'string' and detail or vim.json.encode(detail)
  if #text > 2000 then
    text = text:sub(1, 2000) .. '…'
  end
  local seconds = math.floor((vim.uv.hrtime() - step_start) / 1e8) / 10
  results:write(
    vim.json.encode({ name = 'nvim: ' .. name, ok = ok and true or false, detail = text, seconds = seconds }),
    '\n'
  )
  results:flush()
end

local function step(name, fn)
  step_start = vim.uv.hrtime()
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    record(name, false, 'exception: ' .. tostring(err))
  end
end

local function open(file)
  vim.cmd.edit(vim.fn.fnameescape(ws .. '/' .. file))
  return vim.api.nvim_get_current_buf()
end

--- 1-based row and 0-based byte column of `needle` (+ delta bytes) in the buffer.
local function find(buf, needle, delta)
  for row, line in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    local col = line:find(needle, 1, true)
    if col then
      return row, col - 1 + (delta or 0)
    end
  end
  error(('%s not found in %s'):format(needle, vim.api.nvim_buf_get_name(buf)))
end

local function client_for(buf)
  local client
  vim.wait(20000, function()
    client = vim.lsp.get_clients({ name = 'coremlq', bufnr = buf })[1]
    return client ~= nil and client.initialized == true
  end, 50)
  return client
end

--- Calls `fn(remaining_ms)` every 200 ms until it returns true or `timeout_ms` passes.
local function poll(timeout_ms, fn)
  local deadline = vim.uv.now() + timeout_ms
  repeat
    if fn(math.max(deadline - vim.uv.now(), 1)) then
      return true
    end
    vim.wait(200)
    vim.uv.update_time()
  until vim.uv.now() >= deadline
  return false
end

local function request_at(client, buf, method, row, col, timeout_ms)
  vim.api.nvim_win_set_cursor(0, { row, col })
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local responses, err = vim.lsp.buf_request_sync(buf, method, params, timeout_ms or 5000)
  if not responses then
    return nil, err
  end
  for _, r in pairs(responses) do
    if r.err then
      return nil, r.err
    end
    return r.result
  end
end

--- The exact output size after the first `→` followed by one ("1,234 → 567 bytes").
local function parse_estimate(text)
  local function numbers(s, exact)
    local found = {}
    for num, unit in s:gmatch('(%d[%d,_]*)%s*(%a*)') do
      if not exact or unit == 'B' or unit == 'bytes' then
        table.insert(found, tonumber((num:gsub('[,_]', ''))))
      end
    end
    return found
  end
  for line in (text .. '\n'):gmatch('(.-)\n') do
    local s, e = line:find('→', 1, true)
    if s then
      local left = numbers(line:sub(1, s - 1), false)
      local right = numbers(line:sub(e + 1), true)
      if right[1] then
        return { input = left[#left], output = right[1] }
      end
    end
  end
  return nil
end

local function hover_text(result)
  if not result or not result.contents then
    return ''
  end
  local c = result.contents
  if type(c) == 'string' then
    return c
  end
  if c.value then
    return c.value
  end
  local parts = {}
  for _, item in ipairs(c) do
    table.insert(parts, type(item) == 'string' and item or item.value or '')
  end
  return table.concat(parts, '\n')
end

local function summarize(diags)
  return vim.tbl_map(function(d)
    return {
      code = d.code,
      severity = d.severity,
      range = { d.lnum, d.col, d.end_lnum, d.end_col },
      message = d.message,
    }
  end, diags)
end

-- ---------------------------------------------------------------------------------------
local estimate

step('diagnostics', function()
  local buf = open('bad.quant.json')
  record('filetype of *.quant.json is jsonc', vim.bo[buf].filetype == 'jsonc', vim.bo[buf].filetype)
  local client = client_for(buf)
  record('server attached', client ~= nil, client and {
    server = client.server_info,
    offset_encoding = client.offset_encoding,
    root = client.root_dir,
  } or 'no initialized coremlq client after 20 s')
  if not client then
    return
  end
  vim.wait(20000, function()
    return #vim.diagnostic.get(buf) >= 3
  end, 50)
  local diags = vim.diagnostic.get(buf)
  local all = summarize(diags)
  local E = vim.diagnostic.severity

  local function covering(row, col, pred)
    for _, d in ipairs(diags) do
      local after_start = d.lnum < row - 1 or (d.lnum == row - 1 and d.col <= col)
      local before_end = d.end_lnum > row - 1 or (d.end_lnum == row - 1 and d.end_col > col)
      if after_start and before_end and pred(d) then
        return d
      end
    end
  end

  local nrow, ncol = find(buf, ': 9', 2)
  local nd = covering(nrow, ncol, function(d)
    return d.severity == E.ERROR
  end)
  record(
    'diagnostic for a bad nbits (error on the value 9)',
    nd ~= nil and (nd.message:find('nbits') or nd.message:find('16')) ~= nil,
    nd and summarize({ nd })[1] or { none = 'no error covering the value 9', got = all }
  )

  local lrow, lcol = find(buf, '"fc_1"', 1)
  local ld = covering(lrow, lcol, function(d)
    return d.severity <= E.WARN
  end)
  record(
    'diagnostic for an unknown layer (fc_1, on the key)',
    ld ~= nil and ld.message:find('fc_1', 1, true) ~= nil,
    ld and summarize({ ld })[1] or { none = 'no diagnostic on fc_1', got = all }
  )

  -- After non-ASCII text on the same line, the start column (bytes, in Neovim) must be
  -- the string's, whatever position encoding was negotiated.
  local arow, acol = find(buf, '"clasifier"', 0)
  local ad
  for _, d in ipairs(diags) do
    if d.lnum == arow - 1 and d.message:find('clasifier', 1, true) then
      ad = d
    end
  end
  record(
    ('range after non-ASCII text (clasifier) starts at the string (%s)'):format(client.offset_encoding),
    ad ~= nil and (ad.col == acol or ad.col == acol + 1),
    ad and { expected_col = { acol, acol + 1 }, got = summarize({ ad })[1] }
      or { none = 'no diagnostic naming clasifier on its line', got = all }
  )

  -- The quick fix, applied as a user would (cursor on fc_1, code action).
  vim.api.nvim_win_set_cursor(0, { lrow, lcol })
  local titles = {}
  local applied = false
  vim.lsp.buf.code_action({
    context = { only = { 'quickfix' } },
    apply = true,
    filter = function(action)
      table.insert(titles, action.title)
      return action.title:find('fc1', 1, true) ~= nil
    end,
  })
  vim.wait(10000, function()
    local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
    applied = text:find('"fc1"', 1, true) ~= nil and text:find('"fc_1"', 1, true) == nil
    return applied
  end, 50)
  local cleared = vim.wait(15000, function()
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.message:find('fc_1', 1, true) then
        return false
      end
    end
    return true
  end, 50)
  record('quick fix fc_1 → fc1 applied', applied and cleared, {
    text_fixed = applied,
    diagnostic_cleared = cleared,
    titles = titles,
  })
  vim.cmd('silent! edit!')
end)

step('completion', function()
  local buf = open('complete.quant.json')
  local client = client_for(buf)
  if not client then
    record('completion of layer names', false, 'no client')
    return
  end
  local row, col = find(buf, '[""]', 2)
  local labels = {}
  poll(20000, function(remaining)
    local result = request_at(client, buf, 'textDocument/completion', row, col, remaining)
    local items = result and (result.items or result) or {}
    labels = vim.tbl_map(function(i)
      return i.label
    end, items)
    return #labels > 0
  end)
  local have = {}
  for _, l in ipairs(labels) do
    have[(l:gsub('^"', ''):gsub('"$', ''))] = true
  end
  local missing = vim.tbl_filter(function(w)
    return not have[w]
  end, { 'conv1', 'dw1', 'pw4', 'fc1', 'classifier' })
  record('completion of layer names', #missing == 0, { missing = missing, labels = vim.list_slice(labels, 1, 40) })
end)

step('hover', function()
  local buf = open('good.quant.json')
  local client = client_for(buf)
  if not client then
    record('hover shows the estimate', false, 'no client')
    return
  end
  local tries = {
    { '"nbits": 8', 2 },
    { '"nbits": 8', 10 },
    { '"quantization_mode"', 2 },
    { '"output"', 2 },
    { '"MobileNetMini.e2e.mlmodel"', 3 },
    { '"model"', 2 },
  }
  local seen = {}
  for i, t in ipairs(tries) do
    local row, col = find(buf, t[1], t[2])
    local text = ''
    poll(i == 1 and 15000 or 3000, function(remaining)
      text = hover_text(request_at(client, buf, 'textDocument/hover', row, col, remaining))
      return text ~= ''
    end)
    table.insert(seen, t[1] .. '+' .. t[2] .. ': ' .. text:sub(1, 300))
    local est = parse_estimate(text)
    if est then
      estimate = est.output
      record('hover shows the estimate', true, { at = t[1], estimate = est, text = text:sub(1, 500) })
      break
    end
  end
  if not estimate then
    record('hover shows the estimate', false, { none = "no hover with 'N → M bytes'", seen = seen })
  end
  -- The server has analysed the valid config by now: it must carry no error.
  vim.wait(1000)
  local errors = vim.diagnostic.get(buf, { severity = vim.diagnostic.severity.ERROR })
  record('no error diagnostics on the valid config', #errors == 0, summarize(errors))
end)

step('inlay hints and code lens', function()
  local buf = open('good.quant.json')
  if not client_for(buf) then
    record('inlay hint and code lens', false, 'no client')
    return
  end
  local hints, lenses = {}, {}
  vim.wait(10000, function()
    hints = vim.lsp.inlay_hint.get({ bufnr = buf })
    lenses = vim.lsp.codelens.get(buf)
    return #hints > 0 and #lenses > 0
  end, 100)
  local hint_labels = vim.tbl_map(function(h)
    local label = h.inlay_hint.label
    if type(label) == 'table' then
      label = table.concat(vim.tbl_map(function(p)
        return p.value
      end, label))
    end
    return label
  end, hints)
  record(
    'inlay hints enabled by setup() show sizes',
    vim.lsp.inlay_hint.is_enabled({ bufnr = buf }) and #hint_labels > 0 and hint_labels[1]:find('→', 1, true) ~= nil,
    hint_labels
  )
  local titles = vim.tbl_map(function(l)
    return l.command and l.command.title or '(unresolved)'
  end, lenses)
  record('code lens "Quantize → size" shown', #titles > 0 and titles[1]:find('Quantize', 1, true) ~= nil, titles)
end)

step('quantize', function()
  local buf = open('good.quant.json')
  local out = ws .. '/MobileNetMini.e2e.mlmodel'
  os.remove(out)
  local done
  vim.api.nvim_create_autocmd('User', {
    pattern = 'CoremlqQuantized',
    once = true,
    callback = function(ev)
      done = ev.data
    end,
  })
  if not client_for(buf) then
    record(':CoremlqQuantize writes the output whose size equals the estimate', false, 'no client')
    return
  end
  -- Everything echoed in the message area while it runs (progress is not kept in :messages).
  local echoed = {}
  local real_echo = vim.api.nvim_echo
  vim.api.nvim_echo = function(chunks, history, opts)
    for _, chunk in ipairs(chunks) do
      table.insert(echoed, chunk[1])
    end
    return real_echo(chunks, history, opts)
  end
  vim.cmd('CoremlqQuantize')
  vim.wait(120000, function()
    return done ~= nil
  end, 100)
  vim.api.nvim_echo = real_echo
  local stat = vim.uv.fs_stat(out)
  local size = stat and stat.size or nil
  local messages = vim.api.nvim_exec2('messages', { output = true }).output
  local written = done ~= nil and done.ok and size ~= nil and estimate ~= nil and size == estimate
  record(':CoremlqQuantize writes the output whose size equals the estimate', written, {
    outcome = done and { ok = done.ok, error = done.error, output = done.output, bytes = done.bytes }
      or 'no CoremlqQuantized event in 120 s',
    file_size = size or vim.NIL,
    estimate = estimate or vim.NIL,
  })
  local progress = vim.tbl_filter(function(m)
    return m:find('%d+%%') ~= nil or m:find('%d+/%d+') ~= nil
  end, echoed)
  local reported = #progress > 0 and messages:find('coremlq: wrote', 1, true) ~= nil
  record(':CoremlqQuantize shows progress, then the result, in the message area', reported, {
    progress = vim.list_slice(progress, 1, 5),
    echoed = #echoed,
    messages = messages:sub(-400),
  })
end)

step('summary', function()
  local buf = open('good.quant.json')
  client_for(buf)
  local wins = #vim.api.nvim_list_wins()
  vim.cmd('CoremlqSummary')
  vim.wait(10000, function()
    return #vim.api.nvim_list_wins() > wins
  end, 50)
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  record(
    ':CoremlqSummary shows the summary with the estimate',
    vim.bo.filetype == 'markdown' and text:find('MobileNetMini', 1, true) ~= nil and text:find('→', 1, true) ~= nil,
    text:sub(1, 600)
  )
  if #vim.api.nvim_list_wins() > wins then
    vim.cmd('close')
  end
end)

step('restart', function()
  local buf = open('good.quant.json')
  local before = client_for(buf)
  vim.cmd('CoremlqRestart')
  local after
  vim.wait(20000, function()
    after = vim.lsp.get_clients({ name = 'coremlq', bufnr = buf })[1]
    return after ~= nil and after.initialized == true and (before == nil or after.id ~= before.id)
  end, 50)
  local restarted = before ~= nil and after ~= nil and after.id ~= before.id
  record(':CoremlqRestart starts a new client on the buffer', restarted, {
    before = before and before.id or vim.NIL,
    after = after and after.id or vim.NIL,
  })
end)

step('checkhealth', function()
  vim.cmd('checkhealth coremlq')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  local errors = select(2, text:gsub('ERROR', ''))
  record(':checkhealth coremlq has no errors', text:find('OK', 1, true) ~= nil and errors == 0, text:sub(1, 1500))
end)

results:close()
vim.cmd(failed == 0 and 'qall!' or 'cquit! 1')
