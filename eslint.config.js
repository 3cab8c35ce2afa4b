// Type-aware lint: typescript-eslint plus the RxJS rules that catch nested subscribes,
// unsafe takeUntil and unbounded replays (see ../STYLE notes in docs/architecture.md).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import rxjsX from 'eslint-plugin-rxjs-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scripts/**', '.bench-out/**', 'bench/results/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    plugins: { 'rxjs-x': rxjsX },
    rules: {
      ...rxjsX.configs.recommended.rules,
      'rxjs-x/no-unsafe-takeuntil': 'error',
      'rxjs-x/no-ignored-replay-buffer': 'error',
      'rxjs-x/no-sharereplay': ['error', { allowConfig: true }],
      'rxjs-x/no-nested-subscribe': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
    },
  },
  {
    // The dashboard's page script runs in the browser, served alone as app.js: type imports only
    // (nothing else is served beside it), and none of Node's globals (they type-check, but are not there).
    files: ['lib/dashboard/app.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ group: ['*'], allowTypeImports: true, message: 'app.ts runs in the browser alone: type imports only' }] }],
      'no-restricted-globals': ['error', 'Buffer', 'process', 'require', 'global', '__dirname', '__filename', 'setImmediate'],
    },
  },
  {
    // Tests drive the real edges, so they may subscribe, and they use node:test's describe/it promises freely.
    files: ['spec/**/*.ts', 'marbles/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
