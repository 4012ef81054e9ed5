--- coremlq: language server support for coremlq quantization configs (`*.quant.json`).
---
--- require('coremlq').setup({ ... }) starts `coremlq-lsp` for every `*.quant.json` buffer
--- (filetype jsonc) and provides :CoremlqQuantize, :CoremlqSummary, :CoremlqRestart and
--- :CoremlqCancel. See :help coremlq.
local M = {}

--- Server command names (`workspace/executeCommand`), each taking `{ config_uri }`.
M.server_commands = { quantize = 'coremlq.quantize', summary = 'coremlq.modelSummary' }

--- The defaults of setup(); see :help coremlq-options.
M.defaults = {
  --- The server command; `--stdio` is optional (stdio is the only transport).
  cmd = { 'coremlq-lsp' },
  --- Filetypes to consider; only buffers whose name matches `pattern` get the server.
  filetypes = { 'jsonc' },
  --- Lua pattern on the buffer name.
  pattern = '%.quant%.json$',
  --- Files or folders marking the project root (the server's workspace folder).
  --- Without one, the config's own folder is the root.
  root_markers = { '.git' },
  --- Sent as `initializationOptions`.
  init_options = {},
  --- Sent with `workspace/didChangeConfiguration`.
  settings = {},
  --- Merged into Neovim's default client capabilities.
  capabilities = nil,
  --- function(client, bufnr) called when the server attaches to a buffer.
  on_attach = nil,
  --- Protocol trace in the LSP log: 'off', 'messages' or 'verbose'.
  trace = 'off',
  --- Echo the server's progress reports (quantization) in the message area.
  progress = true,
  --- Enable the server's inlay hints (size after each layer entry) in config buffers.
  inlay_hints = true,
  --- Show and refresh the server's code lens ("Quantize → 289 KB"); run it with
  --- vim.lsp.codelens.run().
  codelens = true,
}

M.config = vim.deepcopy(M.defaults)
M.did_setup = false

local has_011 = vim.fn.has('nvim-0.11') == 1

local function notify(msg, level)
  vim.notify('coremlq: ' .. msg, level or vim.log.levels.INFO)
end

--- Whether the buffer is a coremlq config.
---@param bufnr integer
---@return boolean
function M.is_config(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  return name ~= '' and name:match(M.config.pattern) ~= nil
end

local function root_for(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local root = vim.fs.root and vim.fs.root(bufnr, M.config.root_markers) or nil
  return root or vim.fs.dirname(name)
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  if M.config.capabilities then
    caps = vim.tbl_deep_extend('force', caps, M.config.capabilities)
  end
  return caps
end

local function on_attach(client, bufnr)
  if M.config.inlay_hints and vim.lsp.inlay_hint then
    pcall(vim.lsp.inlay_hint.enable, true, { bufnr = bufnr })
  end
  if M.config.codelens and client.server_capabilities.codeLensProvider then
    local group = vim.api.nvim_create_augroup(('coremlq.codelens.%d'):format(bufnr), { clear = true })
    vim.api.nvim_create_autocmd({ 'BufEnter', 'InsertLeave', 'TextChanged' }, {
      group = group,
      buffer = bufnr,
      callback = function()
        vim.lsp.codelens.refresh({ bufnr = bufnr })
      end,
    })
    vim.lsp.codelens.refresh({ bufnr = bufnr })
  end
  if M.config.on_attach then
    M.config.on_attach(client, bufnr)
  end
end

local function client_config()
  return {
    name = 'coremlq',
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    init_options = M.config.init_options,
    settings = M.config.settings,
    capabilities = capabilities(),
    trace = M.config.trace,
    on_attach = on_attach,
  }
end

--- The running coremlq client for a buffer, if any.
---@param bufnr integer?
---@return vim.lsp.Client?
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = 'coremlq', bufnr = bufnr or 0 })
  return clients[1]
end

local function request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function start_010(bufnr)
  if not M.is_config(bufnr) then
    return
  end
  local cfg = client_config()
  cfg.root_dir = root_for(bufnr)
  vim.lsp.start(cfg, { bufnr = bufnr })
end

--- Configures and enables the language server. Safe to call more than once.
---@param opts table?
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- The server's quantize command (code lens, source action) runs with progress, as
  -- :CoremlqQuantize does.
  vim.lsp.commands[M.server_commands.quantize] = function(_, ctx)
    M.quantize(ctx.bufnr)
  end
  if type(M.config.cmd) == 'string' then
    M.config.cmd = { M.config.cmd }
  end
  vim.filetype.add({ pattern = { ['.*%.quant%.json'] = 'jsonc' } })

  if has_011 then
    local cfg = client_config()
    cfg.root_dir = function(bufnr, on_dir)
      if M.is_config(bufnr) then
        on_dir(root_for(bufnr))
      end
    end
    vim.lsp.config('coremlq', cfg)
    vim.lsp.enable('coremlq')
  else
    local group = vim.api.nvim_create_augroup('coremlq.lsp', { clear = true })
    vim.api.nvim_create_autocmd('FileType', {
      group = group,
      pattern = M.config.filetypes,
      callback = function(ev)
        start_010(ev.buf)
      end,
    })
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(M.config.filetypes, vim.bo[buf].filetype) then
        start_010(buf)
      end
    end
  end
  M.did_setup = true
end

local function config_target(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not M.is_config(bufnr) then
    notify('the current buffer is not a *.quant.json config', vim.log.levels.WARN)
    return nil
  end
  local client = M.client(bufnr)
  if not client then
    notify('the language server is not attached to this buffer (see :checkhealth coremlq)', vim.log.levels.ERROR)
    return nil
  end
  return bufnr, client
end

--- Running quantizations: request id → { client, token }, for :CoremlqCancel.
local running = {}

local function output_of(result, config_path)
  if type(result) == 'string' then
    return result, nil
  end
  if type(result) ~= 'table' then
    return nil, nil
  end
  local out
  for _, key in ipairs({ 'outputUri', 'output_uri', 'uri', 'output', 'outputPath', 'output_path', 'path' }) do
    if type(result[key]) == 'string' then
      out = result[key]
      break
    end
  end
  if out and out:match('^%a[%w+.-]*://') then
    out = vim.uri_to_fname(out)
  elseif out and not vim.startswith(out, '/') then
    out = vim.fs.joinpath(vim.fs.dirname(config_path), out)
  end
  local bytes
  for _, key in ipairs({ 'bytesAfter', 'bytes_after', 'bytes', 'size', 'outputBytes', 'output_bytes' }) do
    if type(result[key]) == 'number' then
      bytes = result[key]
      break
    end
  end
  if out and not bytes then
    local stat = vim.uv.fs_stat(out)
    bytes = stat and stat.size or nil
  end
  return out, bytes
end

--- Quantizes the model of the config in `bufnr` (the server writes the output file).
--- Progress is echoed in the message area; on completion the `User CoremlqQuantized`
--- autocommand fires with data `{ ok, output, bytes, error, config }`.
---@param bufnr integer?
function M.quantize(bufnr)
  local buf, client = config_target(bufnr)
  if not buf then
    return
  end
  local path = vim.api.nvim_buf_get_name(buf)
  local token = ('coremlq-quantize-%d-%d'):format(vim.uv.hrtime(), buf)
  local group = vim.api.nvim_create_augroup('coremlq.progress.' .. token, { clear = true })
  if M.config.progress then
    vim.api.nvim_create_autocmd('LspProgress', {
      group = group,
      callback = function(ev)
        -- Our token, or one the server created itself (window/workDoneProgress/create).
        local params = ev.data and ev.data.params
        if not params or ev.data.client_id ~= client.id then
          return
        end
        local v = params.value or {}
        local parts = { 'coremlq:', v.title, v.message }
        if v.percentage then
          table.insert(parts, ('(%d%%)'):format(v.percentage))
        end
        vim.api.nvim_echo({ { table.concat(vim.tbl_filter(function(p)
          return p ~= nil and p ~= ''
        end, parts), ' ') } }, false, {})
      end,
    })
  end
  vim.api.nvim_echo({ { ('coremlq: quantizing %s …'):format(vim.fn.fnamemodify(path, ':t')) } }, false, {})
  local ok, id
  ok, id = request(client, 'workspace/executeCommand', {
    command = M.server_commands.quantize,
    arguments = { vim.uri_from_bufnr(buf) },
    workDoneToken = token,
  }, function(err, result)
    running[id or -1] = nil
    pcall(vim.api.nvim_del_augroup_by_id, group)
    local data = { ok = err == nil, config = path }
    if err then
      data.error = err.message or vim.inspect(err)
      notify('quantization failed: ' .. data.error, vim.log.levels.ERROR)
    elseif type(result) == 'table' and result.written == false then
      -- The server wrote nothing: cancelled, or declined (it said why).
      data.ok = false
      data.cancelled = result.cancelled == true
      data.error = result.message or (data.cancelled and 'cancelled' or 'nothing was written')
      notify(data.error, vim.log.levels.WARN)
    else
      data.output, data.bytes = output_of(result, path)
      data.result = result
      local size = data.bytes and (' (%d bytes)'):format(data.bytes) or ''
      vim.api.nvim_echo({ { ('coremlq: wrote %s%s'):format(data.output or 'the model', size) } }, true, {})
    end
    vim.api.nvim_exec_autocmds('User', { pattern = 'CoremlqQuantized', data = data, modeline = false })
  end, buf)
  if ok and id then
    running[id] = { client = client, token = token }
  elseif not ok then
    pcall(vim.api.nvim_del_augroup_by_id, group)
    notify('could not send the request: the server has stopped', vim.log.levels.ERROR)
  end
end

--- Cancels the running quantizations (the server leaves no file behind).
function M.cancel()
  local n = 0
  for id, job in pairs(running) do
    -- $/cancelRequest for the request, and the progress token names the job to stop.
    if has_011 then
      job.client:cancel_request(id)
      job.client:notify('window/workDoneProgress/cancel', { token = job.token })
    else
      job.client.cancel_request(id)
      job.client.notify('window/workDoneProgress/cancel', { token = job.token })
    end
    running[id] = nil
    n = n + 1
  end
  notify(n > 0 and 'cancelled' or 'nothing to cancel')
end

local function count(n)
  if type(n) ~= 'number' then
    return '—'
  end
  local s = tostring(math.floor(n))
  return (s:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', ''))
end

local function md_table(rows, columns)
  local lines = {}
  local head, rule = {}, {}
  for _, c in ipairs(columns) do
    table.insert(head, c[2])
    table.insert(rule, '---')
  end
  table.insert(lines, '| ' .. table.concat(head, ' | ') .. ' |')
  table.insert(lines, '|' .. table.concat(rule, '|') .. '|')
  for _, r in ipairs(rows) do
    local cells = {}
    for _, c in ipairs(columns) do
      local v = r[c[1]]
      table.insert(cells, type(v) == 'number' and count(v) or tostring(v or ''))
    end
    table.insert(lines, '| ' .. table.concat(cells, ' | ') .. ' |')
  end
  return table.concat(lines, '\n')
end

--- Markdown for a `coremlq.modelSummary` result (the server's JSON object).
---@param result any
---@param name string the config's file name
---@return string
function M.summary_markdown(result, name)
  if type(result) == 'string' then
    return result
  end
  if type(result) ~= 'table' or type(result.modelType) ~= 'string' then
    return '```json\n' .. vim.json.encode(result) .. '\n```'
  end
  local r = result
  local out = {
    ('# %s'):format(vim.fn.fnamemodify(type(r.path) == 'string' and r.path or name, ':t')),
    '',
    ('Config: `%s`'):format(name),
    '',
    ('- Model type: `%s`, specification version %s%s'):format(
      r.modelType,
      tostring(r.specificationVersion or '?'),
      r.isUpdatable == true and ', updatable' or ''
    ),
    ('- File: %s bytes'):format(count(r.fileBytes)),
    ('- Weights: %s bytes (%s)'):format(count(r.weightBytes), tostring(r.storage or '')),
    ('- Layers: %s (%s with weights)'):format(count(r.layers), count(r.layersWithWeights)),
  }
  local est = type(r.estimate) == 'table' and r.estimate or nil
  if est and est.bytesAfter then
    table.insert(out, ('- Estimated output: %s → %s bytes'):format(count(est.bytesBefore), count(est.bytesAfter)))
  end
  if type(r.output) == 'string' then
    table.insert(out, ('- Output file: `%s`'):format(r.output))
  end
  if type(r.layerTypes) == 'table' and #r.layerTypes > 0 then
    vim.list_extend(out, { '', '## Layer types', '' })
    table.insert(
      out,
      md_table(r.layerTypes, { { 'type', 'type' }, { 'layers', 'layers' }, { 'weightBytes', 'weight bytes' } })
    )
  end
  if type(r.largestLayers) == 'table' and #r.largestLayers > 0 then
    vim.list_extend(out, { '', '## Largest layers', '' })
    table.insert(
      out,
      md_table(r.largestLayers, {
        { 'name', 'layer' },
        { 'type', 'type' },
        { 'weights', 'weights' },
        { 'weightBytes', 'weight bytes' },
      })
    )
  end
  return table.concat(out, '\n')
end

--- Shows the model summary for the config in `bufnr` in a scratch split.
---@param bufnr integer?
function M.summary(bufnr)
  local buf, client = config_target(bufnr)
  if not buf then
    return
  end
  request(client, 'workspace/executeCommand', {
    command = M.server_commands.summary,
    arguments = { vim.uri_from_bufnr(buf) },
  }, function(err, result)
    if err then
      notify('model summary failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    local text = M.summary_markdown(result, vim.fn.fnamemodify(vim.api.nvim_buf_get_name(buf), ':t'))
    local sbuf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(sbuf, 0, -1, false, vim.split(text, '\n', { plain = true }))
    vim.bo[sbuf].filetype = 'markdown'
    vim.bo[sbuf].modifiable = false
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, sbuf)
  end, buf)
end

--- Stops the coremlq clients and starts them again on the configs they served.
function M.restart()
  local buffers = {}
  for _, client in ipairs(vim.lsp.get_clients({ name = 'coremlq' })) do
    for buf in pairs(client.attached_buffers) do
      table.insert(buffers, buf)
    end
    if has_011 then
      client:stop()
    else
      client.stop()
    end
  end
  vim.wait(3000, function()
    return #vim.lsp.get_clients({ name = 'coremlq' }) == 0
  end, 50)
  for _, buf in ipairs(buffers) do
    if vim.api.nvim_buf_is_valid(buf) then
      if has_011 then
        vim.api.nvim_exec_autocmds('FileType', { group = 'nvim.lsp.enable', buffer = buf, modeline = false })
      else
        start_010(buf)
      end
    end
  end
  notify(('restarted (%d buffer(s))'):format(#buffers))
end

return M
