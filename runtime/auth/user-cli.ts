import { join } from 'node:path';
import { UserStore } from './users.js';
import { isRole, ROLES } from './roles.js';
import { OutpostError } from '../../core/errors.js';

/** The user file of a data dir (the same path the gateway's Security uses). */
function userFilePath(dataDir: string): string {
  return join(dataDir, 'auth', 'users.json');
}

/**
 * `outpost user add <name> [--role admin|operator|viewer]` and `outpost user list`:
 * edits the user file directly, so it works whether or not the gateway runs (a running
 * gateway re-reads the file when it changes). Returns the line to print.
 */
export async function userCommand(dataDir: string, args: { action: string; username?: string; role?: string; password?: string }): Promise<string> {
  const store = new UserStore(userFilePath(dataDir));
  store.load();
  switch (args.action) {
    case 'add': {
      const role = args.role ?? 'viewer';
      if (!isRole(role)) throw new OutpostError('BAD_REQUEST', `--role must be one of ${ROLES.join(', ')}`);
      const user = await store.addUser({ username: args.username, role, password: args.password });
      return `user "${user.username}" added with role ${user.role}`;
    }
    case 'passwd': {
      const user = await store.updateUser(args.username ?? '', { password: args.password });
      return `password of "${user.username}" changed (their sessions end when the gateway next sees the file)`;
    }
    case 'list':
      return (
        store
          .listUsers()
          .map((u) => `${u.username}\t${u.role}`)
          .join('\n') || '(no users yet: the first start creates the admin)'
      );
    default:
      throw new OutpostError('BAD_REQUEST', 'usage: outpost user add <name> [--role admin|operator|viewer] | outpost user passwd <name> | outpost user list');
  }
}
