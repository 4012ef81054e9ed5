--- :checkhealth coremlq
local M = {}

function M.check()
  local health = vim.health
  local coremlq = require('coremlq')

  health.start('coremlq: Neovim')
  if vim.fn.has('nvim-0.10') == 1 then
    local v = vim.version()
    health.ok(('Neovim %d.%d.%d'):format(v.major, v.minor, v.patch))
  else
    health.error('Neovim 0.10 or newer is required')
  end

  health.start('coremlq: setup')
  if coremlq.did_setup then
    health.ok("require('coremlq').setup() was called")
  else
    health.warn("require('coremlq').setup() was not called: the language server is not enabled", {
      "Add require('coremlq').setup({}) to your config.",
    })
  end
  local ft = vim.filetype.match({ filename = 'model.quant.json' })
  if ft == 'jsonc' then
    health.ok('*.quant.json files get filetype jsonc')
  else
    health.error(('*.quant.json files get filetype %s, expected jsonc'):format(tostring(ft)))
  end

  health.start('coremlq: language server')
  local exe = coremlq.config.cmd and coremlq.config.cmd[1]
  if not exe then
    health.error('no server command configured (cmd)')
  elseif vim.fn.executable(exe) == 1 then
    local version = vim.trim(vim.fn.system({ exe, '--version' }))
    if vim.v.shell_error == 0 then
      health.ok(('server: %s (%s)'):format(vim.fn.exepath(exe), version))
    else
      health.warn(('server: %s does not answer --version: %s'):format(vim.fn.exepath(exe), version))
    end
  else
    health.error(('server %s is not executable or not on PATH'):format(exe), {
      'Build it with `cargo build --release -p coremlq-lsp` and put it on PATH,',
      "or pass its path: require('coremlq').setup({ cmd = { '/path/to/coremlq-lsp' } })",
    })
  end
  local clients = vim.lsp.get_clients({ name = 'coremlq' })
  if #clients == 0 then
    health.info('no coremlq client is running (open a *.quant.json file)')
  end
  for _, client in ipairs(clients) do
    local bufs = vim.tbl_count(client.attached_buffers)
    local info = client.server_info or {}
    health.ok(('client %d: %s %s, root %s, position encoding %s, %d buffer(s)'):format(
      client.id,
      info.name or 'coremlq-lsp',
      info.version or '',
      client.root_dir or client.config.root_dir or '-',
      client.offset_encoding,
      bufs
    ))
  end

  health.start('coremlq: optional')
  local ok_ts = pcall(vim.treesitter.language.add, 'jsonc')
  if ok_ts then
    health.ok('tree-sitter parser jsonc is installed (highlighting)')
  else
    health.info('no tree-sitter parser for jsonc: the regex syntax highlighting is used')
  end
end

return M
