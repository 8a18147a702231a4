/**
 * @peculiar/x509 setup, imported before the library is used: its dependency tsyringe needs the
 * Reflect metadata API, and the library needs a WebCrypto provider (Node's).
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto is the standard Crypto; only the DOM lib (which we do not load) names that type.
x509.cryptoProvider.set(webcrypto as never);
