/**
 * Node flags that run this repository's TypeScript sources in a child process: tsx, and the export condition
 * `@fleetgate/source` that makes `@fleetgate/*` imports resolve to the packages' src/ instead of their built
 * dist/ (the test process itself runs this way, .mocharc.json). What ships runs as built JavaScript.
 */
export const SOURCE_NODE_ARGS: readonly string[] = ['--conditions=@fleetgate/source', '--import', 'tsx'];
