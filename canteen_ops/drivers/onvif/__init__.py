"""The ONVIF driver, in three modules:

- transport.py: the SOAP plumbing: onvif-zeep's WSDLs as one zeep Client per process (shared_client, wsdl_dir,
  import_onvif_quietly), the zeep transport over the device's httpx connection, the WS-Security token;
- parsers.py: pure readers of ONVIF answers (GetSystemDateAndTime, GetDeviceInformation, GetNTP, the recording and
  event searches, GetSystemBackup), of tokens and URIs, and the settings snapshot's normalize_settings;
- driver.py: OnvifDriver, the getters, built on the other two (drivers/registry.py names it).

Import the module that holds a name: this package re-exports nothing, so importing it loads none of them.
"""
