/** Bare Aedes on a TCP port: the peer the broker benchmark compares Outpost against. */
import { Aedes } from 'aedes';
import { createServer } from 'node:net';

const broker = await Aedes.createBroker();
const server = createServer((socket) => broker.handle(socket));
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => broker.close(() => server.close(() => process.exit(0))));
