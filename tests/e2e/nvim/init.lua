-- The user config of the end-to-end run: the plugin installed as a native package
-- (pack/*/start/coremlq, placed by run.sh) and the three-line setup from the docs.
vim.opt.swapfile = false
vim.opt.shortmess:append('I')
require('coremlq').setup({
  cmd = { vim.env.COREMLQ_LSP },
})
