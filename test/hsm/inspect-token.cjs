// Lists every object of a PKCS#11 token as JSON, with the attributes the HSM tests
// check. Usage: node inspect-token.cjs MODULE TOKEN_LABEL < PIN
// Runs as its own process so that it initialises the module on its own.
'use strict'
const { readFileSync } = require('node:fs')
const pkcs11js = require('pkcs11js')

const [modulePath, label] = process.argv.slice(2)
const pin = readFileSync(0, 'utf8').trim()
const api = new pkcs11js.PKCS11()
api.load(modulePath)
api.C_Initialize()
try {
  const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).label.trim() === label)
  if (!slot) throw new Error(`no token ${label}`)
  const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
  api.C_Login(session, pkcs11js.CKU_USER, pin)
  api.C_FindObjectsInit(session, [])
  const handles = []
  for (;;) {
    const batch = api.C_FindObjects(session, 64)
    handles.push(...batch)
    if (batch.length < 64) break
  }
  api.C_FindObjectsFinal(session)
  const bool = (buffer) => buffer.length > 0 && buffer[0] !== 0
  const read = (handle, type) => api.C_GetAttributeValue(session, handle, [{ type }])[0].value
  const objects = handles.map((handle) => {
    const cls = read(handle, pkcs11js.CKA_CLASS).readUInt32LE(0)
    const object = {
      class: cls === pkcs11js.CKO_PRIVATE_KEY ? 'private' : cls === pkcs11js.CKO_PUBLIC_KEY ? 'public' : cls === pkcs11js.CKO_SECRET_KEY ? 'secret' : 'other',
      id: read(handle, pkcs11js.CKA_ID).toString('hex'),
      label: read(handle, pkcs11js.CKA_LABEL).toString('utf8'),
      keyType: read(handle, pkcs11js.CKA_KEY_TYPE).readUInt32LE(0),
    }
    if (object.class === 'private' || object.class === 'secret') {
      object.sensitive = bool(read(handle, pkcs11js.CKA_SENSITIVE))
      object.extractable = bool(read(handle, pkcs11js.CKA_EXTRACTABLE))
      object.alwaysSensitive = bool(read(handle, pkcs11js.CKA_ALWAYS_SENSITIVE))
      object.neverExtractable = bool(read(handle, pkcs11js.CKA_NEVER_EXTRACTABLE))
      object.sign = bool(read(handle, pkcs11js.CKA_SIGN))
      const secret = object.keyType === pkcs11js.CKK_RSA ? pkcs11js.CKA_PRIVATE_EXPONENT : pkcs11js.CKA_VALUE
      try {
        read(handle, secret)
        object.privateValueRead = 'CKR_OK'
      } catch (error) {
        object.privateValueRead = /CKR_[A-Z_]+/.exec(String(error && error.message))?.[0] ?? 'error'
      }
    }
    return object
  })
  process.stdout.write(JSON.stringify(objects))
  api.C_CloseSession(session)
} finally {
  api.C_Finalize()
}
