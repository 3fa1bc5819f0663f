"""Hub replies and an HttpUplink on a fake network for the HTTP uplink tests."""
from cpagent.uplink.http import HttpUplink

ACK = b'{"Result":true,"StatusCode":{"Code":"000"}}'
SID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
AUTH = ('{"AuthorizationStatus":"Authorized","SessionID":"%s","StatusCode":{"Code":"000"}}'
        % SID).encode()


def reply(status, body=b"{}", extra=""):
    head = "HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n" % (status, extra, len(body))
    return head.encode() + body


def ack(code, result=False):
    return ('{"Result":%s,"StatusCode":{"Code":"%s"}}' % ("true" if result else "false", code)
            ).encode()


def uplink(net, url="http://hub:8080", **cfg):
    cfg["url"] = url
    t = [0]

    def ms():
        t[0] += 5
        return t[0]
    return HttpUplink(cfg, net.connect, ms)
