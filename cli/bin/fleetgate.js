#!/usr/bin/env node
// The fleetgate CLI: the built JavaScript in ../dist (`npm run build`; an installed package ships it built).
await import('../dist/main.js');
