package vips

import _ "github.com/davidbyttow/govips/v2/vips"
