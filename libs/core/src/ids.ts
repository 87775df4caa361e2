import { customAlphabet } from 'nanoid';

/** Lower-case, URL-safe ids that are also valid in DNS labels and etcd keys. */
const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A new random id (nanoid, 12 chars of [0-9a-z]: ~62 bits). */
export const newId: () => string = customAlphabet(alphabet, 12);
