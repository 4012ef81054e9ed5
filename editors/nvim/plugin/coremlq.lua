-- coremlq: filetype detection for *.quant.json (JSON with comments) and the user commands.
-- The language server starts only after require('coremlq').setup{} (see :help coremlq).
if vim.g.loaded_coremlq then
  return
end
vim.g.loaded_coremlq = true

vim.filetype.add({ pattern = { ['.*%.quant%.json'] = 'jsonc' } })

local function cmd(name, fn, desc, extra)
  vim.api.nvim_create_user_command(name, function()
    require('coremlq')[fn]()
  end, vim.tbl_extend('force', { desc = desc }, extra or {}))
end

cmd('CoremlqQuantize', 'quantize', 'coremlq: quantize the model of the current *.quant.json config')
cmd('CoremlqCancel', 'cancel', 'coremlq: cancel the running quantization')
cmd('CoremlqSummary', 'summary', 'coremlq: show the model summary of the current config')
cmd('CoremlqRestart', 'restart', 'coremlq: restart the language server')
